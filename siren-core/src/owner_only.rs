//! Files and folders that only their owner can open: SIREN's databases, the rule cache and the
//! agent's state hold events, password and token hashes, and what to ship next.
//!
//! On Unix the modes are set when a file or folder is created (`0600`, `0700`), so a
//! permissive umask does not widen them; existing files keep their mode unless the caller
//! tightens them with [`restrict`]. Elsewhere the platform's defaults apply (the agent sets
//! its state folder's ACL itself on Windows).

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

/// The mode of files only their owner can read and write.
pub const FILE_MODE: u32 = 0o600;
/// The mode of folders only their owner can open.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and any missing parents as folders only their owner can open. Folders that
/// already exist are left as they are.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)
}

/// Open options that create a file only its owner can read and write (a file that exists
/// keeps its mode). Add `read`, `write`, `append`, `create`… as usual.
pub fn options() -> OpenOptions {
    #[cfg(unix)]
    {
        let mut options = OpenOptions::new();
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
        options
    }
    #[cfg(not(unix))]
    OpenOptions::new()
}

/// Writes `contents` to a new file at `path` (replacing one that is there), readable by its
/// owner only.
pub fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(contents)
}

/// Creates an empty file at `path`, readable by its owner only, unless one exists. Returns
/// whether it created it.
pub fn create_file(path: &Path) -> io::Result<bool> {
    match options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes the permissions in `remove` (mode bits, e.g. `0o077` for group and others) away from
/// the existing file or folder `path`. Returns whether its mode changed. Does nothing to a
/// folder with the sticky bit (a shared folder such as `/tmp`), nor off Unix.
pub fn restrict(path: &Path, remove: u32) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = std::fs::metadata(path)?;
        let mode = metadata.permissions().mode();
        if metadata.is_dir() && mode & 0o1000 != 0 || mode & remove & 0o777 == 0 {
            return Ok(false);
        }
        std::fs::set_permissions(
            path,
            std::fs::Permissions::from_mode(mode & !remove & 0o7777),
        )?;
        Ok(true)
    }
    #[cfg(not(unix))]
    {
        let _ = (path, remove);
        Ok(false)
    }
}

/// The permission bits of the file `path` when its group or others may read it (Unix), for a
/// warning about a configuration file that holds secrets; `None` when only its owner can, it
/// cannot be read, or off Unix.
pub fn readable_by_others(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o044 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn created_files_and_folders_are_the_owners_only() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_dir_all(&nested).unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        let file = nested.join("f");
        assert!(create_file(&file).unwrap());
        assert!(!create_file(&file).unwrap());
        assert_eq!(mode(&file), 0o600);
        write(&nested.join("g"), b"x").unwrap();
        assert_eq!(mode(&nested.join("g")), 0o600);
    }

    #[test]
    fn restrict_removes_only_the_named_bits() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db");
        std::fs::write(&file, b"").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
        assert!(restrict(&file, 0o007).unwrap());
        assert_eq!(mode(&file), 0o660);
        assert!(!restrict(&file, 0o007).unwrap());
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(!restrict(&shared, 0o077).unwrap());
        assert_eq!(mode(&shared), 0o1777);
        assert_eq!(readable_by_others(&file), Some(0o660));
        assert!(restrict(&file, 0o077).unwrap());
        assert_eq!(mode(&file), 0o600);
        assert_eq!(readable_by_others(&file), None);
    }
}
