//! The agent's state folder (spool, acknowledged positions, `status.json`, the lock), which
//! holds the events waiting to be shipped: its owner's only. On Unix it is created `0700`
//! (an existing one loses any access for group and others); on Windows it gets an access list
//! of its own, not inherited, that gives SYSTEM and the Administrators group full control of
//! it and everything in it and nobody else anything (a folder under `C:\ProgramData` would
//! otherwise let every user read it).

use std::path::Path;

use anyhow::Context;

/// The Windows access list of the state folder, in SDDL: protected (`P`: nothing inherited
/// from the parent), full access (`FA`) for SYSTEM (`SY`) and Administrators (`BA`), inherited
/// by files (`OI`) and folders (`CI`) inside.
#[cfg_attr(not(windows), allow(dead_code))]
pub const STATE_DIR_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// Creates the state folder (or tightens an existing one) so that only its owner can open it.
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    siren_core::owner_only::create_dir_all(dir)
        .with_context(|| format!("state_dir: cannot create {}", dir.display()))?;
    if let Err(error) = siren_core::owner_only::restrict(dir, 0o077) {
        tracing::warn!(%error, dir = %dir.display(), "cannot make the state folder its owner's only");
    }
    #[cfg(windows)]
    acl::protect(dir, STATE_DIR_SDDL).with_context(|| {
        format!(
            "state_dir: cannot give {} to SYSTEM and Administrators only",
            dir.display()
        )
    })?;
    Ok(())
}

/// The Windows security calls (`windows-sys`): setting a folder's access list from SDDL and
/// reading it back.
#[cfg(windows)]
#[allow(unsafe_code)]
pub mod acl {
    use std::ffi::c_void;
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr::null_mut;

    use windows_sys::Win32::Foundation::{ERROR_SUCCESS, LocalFree};
    use windows_sys::Win32::Security::Authorization::{
        ConvertSecurityDescriptorToStringSecurityDescriptorW,
        ConvertStringSecurityDescriptorToSecurityDescriptorW, GetNamedSecurityInfoW,
        SDDL_REVISION_1, SE_FILE_OBJECT, SetNamedSecurityInfoW,
    };
    use windows_sys::Win32::Security::{
        ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl,
        PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
    };

    /// Memory the security API allocated, freed with `LocalFree`.
    struct Local(*mut c_void);

    impl Drop for Local {
        fn drop(&mut self) {
            if !self.0.is_null() {
                // SAFETY: the pointer came from the API, which allocates with LocalAlloc.
                unsafe { LocalFree(self.0 as _) };
            }
        }
    }

    fn wide(text: &std::ffi::OsStr) -> Vec<u16> {
        text.encode_wide().chain([0]).collect()
    }

    /// The security descriptor `sddl` describes.
    fn descriptor(sddl: &str) -> std::io::Result<Local> {
        let sddl = wide(std::ffi::OsStr::new(sddl));
        let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
        // SAFETY: `sddl` is NUL-terminated; the caller's guard frees the descriptor.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                null_mut(),
            )
        };
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Local(descriptor))
    }

    /// The access list of a security descriptor, in SDDL (`D:…`).
    fn dacl_sddl(descriptor: PSECURITY_DESCRIPTOR) -> std::io::Result<String> {
        let mut text: *mut u16 = null_mut();
        let mut len = 0u32;
        // SAFETY: `descriptor` is valid; the string is freed by the guard.
        let ok = unsafe {
            ConvertSecurityDescriptorToStringSecurityDescriptorW(
                descriptor,
                SDDL_REVISION_1,
                DACL_SECURITY_INFORMATION,
                &mut text,
                &mut len,
            )
        };
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let _text = Local(text.cast());
        // SAFETY: the API wrote `len` UTF-16 units (with the final NUL) at `text`.
        let units = unsafe { std::slice::from_raw_parts(text, len as usize) };
        let units = units.strip_suffix(&[0]).unwrap_or(units);
        Ok(String::from_utf16_lossy(units))
    }

    /// Replaces the access list of `path` with the one `sddl` describes (a `D:` string), not
    /// inherited from the parent when it says `P`.
    pub fn protect(path: &Path, sddl: &str) -> std::io::Result<()> {
        let descriptor = descriptor(sddl)?;
        let (mut present, mut defaulted) = (0, 0);
        let mut dacl: *mut ACL = null_mut();
        // SAFETY: the descriptor is valid; `dacl` points into it and lives as long.
        let ok = unsafe {
            GetSecurityDescriptorDacl(descriptor.0, &mut present, &mut dacl, &mut defaulted)
        };
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let name = wide(path.as_os_str());
        // SAFETY: `name` is NUL-terminated and `dacl` valid for the call.
        let status = unsafe {
            SetNamedSecurityInfoW(
                name.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                null_mut(),
                null_mut(),
                dacl,
                null_mut(),
            )
        };
        if status != ERROR_SUCCESS {
            return Err(std::io::Error::from_raw_os_error(status as i32));
        }
        Ok(())
    }

    /// The access list of `path`, in SDDL (`D:…`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn read(path: &Path) -> std::io::Result<String> {
        let name = wide(path.as_os_str());
        let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
        // SAFETY: `name` is NUL-terminated; the descriptor is freed by the guard.
        let status = unsafe {
            GetNamedSecurityInfoW(
                name.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION,
                null_mut(),
                null_mut(),
                null_mut(),
                null_mut(),
                &mut descriptor,
            )
        };
        if status != ERROR_SUCCESS {
            return Err(std::io::Error::from_raw_os_error(status as i32));
        }
        let descriptor = Local(descriptor);
        dacl_sddl(descriptor.0)
    }

    /// `sddl` parsed into the security descriptor [`protect`] applies and written back as SDDL:
    /// what the folder's access list reads back as where it is stored.
    #[cfg(test)]
    pub fn parsed(sddl: &str) -> std::io::Result<String> {
        dacl_sddl(descriptor(sddl)?.0)
    }

    /// Whether this runs under Wine, which accepts access lists on files but does not store
    /// them (its `ntdll` exports `wine_get_version`).
    #[cfg(test)]
    pub fn under_wine() -> bool {
        use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
        // SAFETY: both names are NUL-terminated; ntdll is loaded in every process.
        unsafe {
            let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
            !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_state_folder_is_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("siren/state");
        prepare(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&dir.path().join("siren")), 0o700);
        // A folder left readable by an earlier version is tightened.
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
    }

    /// Runs on the Windows build (under Wine in CI): the access list read back is SYSTEM and
    /// Administrators only, not inherited. Wine accepts the access list but does not store it,
    /// so there the test checks what can be checked — the calls succeed and the descriptor
    /// they apply is exactly SYSTEM and Administrators — and says so.
    #[cfg(windows)]
    #[test]
    fn the_state_folder_is_for_system_and_administrators_only() {
        assert_eq!(
            acl::parsed(STATE_DIR_SDDL).unwrap(),
            STATE_DIR_SDDL,
            "the descriptor applied"
        );
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        prepare(&state).unwrap();
        if acl::under_wine() {
            eprintln!(
                "notice: Wine does not store file access lists; the read-back is not checked"
            );
            return;
        }
        let sddl = acl::read(&state).unwrap();
        assert_eq!(sddl, STATE_DIR_SDDL, "the access list read back");
        // A file created inside inherits it.
        std::fs::write(state.join("ack.json"), b"{}").unwrap();
        let inherited = acl::read(&state.join("ack.json")).unwrap();
        assert!(
            inherited.contains(";;;SY)")
                && inherited.contains(";;;BA)")
                && !inherited.contains(";;;BU)")
                && !inherited.contains(";;;WD)"),
            "{inherited}"
        );
    }
}
