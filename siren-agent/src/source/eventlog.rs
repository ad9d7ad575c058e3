//! A Windows Event Log channel, read through the Windows event log API (`EvtSubscribe` with a
//! signal event, `EvtNext`, `EvtRender`). The position is the channel's bookmark XML
//! (`EvtCreateBookmark` / `EvtUpdateBookmark`), so a restart resumes right after the last
//! acknowledged record. Rendered XML is read by `siren-core`'s Windows XML reader and shipped
//! as a flat JSON object of the same fields (`EventID`, `Channel`, `Computer`, `EventData`
//! fields by name…), which the server reads as it reads any flat JSON event.
//!
//! One of the two modules with unsafe code (with the state folder's access list): the FFI
//! calls, each handle closed by a guard.
#![allow(unsafe_code)]

use std::ops::ControlFlow;
use std::time::Duration;

use serde_json::json;
use siren_core::Event;
use siren_core::normalize::{Diagnostic, EventSink, ReadOptions};
use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_INSUFFICIENT_BUFFER, ERROR_NO_MORE_ITEMS, GetLastError, HANDLE,
};
use windows_sys::Win32::System::EventLog::{
    EVT_HANDLE, EvtClose, EvtCreateBookmark, EvtNext, EvtRender, EvtRenderBookmark,
    EvtRenderEventXml, EvtSubscribe, EvtSubscribeStartAfterBookmark,
    EvtSubscribeStartAtOldestRecord, EvtSubscribeToFutureEvents, EvtUpdateBookmark,
};
use windows_sys::Win32::System::Threading::{CreateEventW, ResetEvent, WaitForSingleObject};

use super::jsonl::StopError;
use super::{Emit, Source, SourceItem};
use crate::config::StartAt;

/// A subscribed channel.
pub struct EventLog {
    name: String,
    channel: String,
    query: String,
    start_at: StartAt,
}

impl EventLog {
    /// A channel with an XPath query (default `*`).
    pub fn new(name: &str, channel: &str, query: Option<&str>, start_at: StartAt) -> Self {
        Self {
            name: name.to_owned(),
            channel: channel.to_owned(),
            query: query.unwrap_or("*").to_owned(),
            start_at,
        }
    }
}

fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(std::iter::once(0)).collect()
}

/// Closes an event log handle when dropped.
struct EvtGuard(EVT_HANDLE);
impl Drop for EvtGuard {
    fn drop(&mut self) {
        if self.0 != 0 {
            // SAFETY: the handle came from an Evt* call and is closed once.
            unsafe { EvtClose(self.0) };
        }
    }
}

/// Closes a kernel handle when dropped.
struct HandleGuard(HANDLE);
impl Drop for HandleGuard {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the handle came from CreateEventW and is closed once.
            unsafe { CloseHandle(self.0) };
        }
    }
}

fn last_error() -> u32 {
    // SAFETY: reads the calling thread's last-error value.
    unsafe { GetLastError() }
}

/// Renders an event (as XML) or a bookmark (as XML) to a string.
fn render(handle: EVT_HANDLE, flags: u32) -> Result<String, String> {
    let mut buffer: Vec<u16> = vec![0; 4096];
    loop {
        let mut used = 0u32;
        let mut properties = 0u32;
        // SAFETY: the buffer is valid for `buffer.len() * 2` bytes; `used` and `properties`
        // are valid out-pointers.
        let ok = unsafe {
            EvtRender(
                0,
                handle,
                flags,
                (buffer.len() * 2) as u32,
                buffer.as_mut_ptr().cast(),
                &mut used,
                &mut properties,
            )
        };
        if ok != 0 {
            let chars = (used as usize / 2).min(buffer.len());
            let text = String::from_utf16_lossy(&buffer[..chars]);
            return Ok(text.trim_end_matches('\0').to_owned());
        }
        let error = last_error();
        if error == ERROR_INSUFFICIENT_BUFFER && (used as usize) > buffer.len() * 2 {
            buffer = vec![0; used as usize / 2 + 1];
            continue;
        }
        return Err(format!("EvtRender failed (error {error})"));
    }
}

/// Collects the one event of a rendered XML record.
#[derive(Default)]
struct One {
    event: Option<Event>,
    problem: Option<String>,
}

impl EventSink for One {
    fn event(&mut self, event: Event) -> ControlFlow<()> {
        self.event = Some(event);
        ControlFlow::Break(())
    }
    fn diagnostic(&mut self, diagnostic: Diagnostic) -> ControlFlow<()> {
        self.problem = Some(diagnostic.to_string());
        ControlFlow::Continue(())
    }
}

/// The event as a flat JSON object of its Sigma-named fields.
fn to_json(xml: &str, channel: &str) -> Result<String, String> {
    let mut sink = One::default();
    siren_core::normalize::read_stream(
        channel,
        None,
        xml.as_bytes(),
        &ReadOptions::default(),
        &mut sink,
    )?;
    match sink.event {
        Some(event) => serde_json::to_string(&event.fields).map_err(|e| e.to_string()),
        None => Err(sink
            .problem
            .unwrap_or_else(|| "no event in the rendered XML".to_owned())),
    }
}

impl Source for EventLog {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&mut self, emit: &mut dyn Emit) -> anyhow::Result<()> {
        let stop = |_| anyhow::Error::new(StopError);
        let saved = emit
            .resume(&self.name)
            .and_then(|v| v["bookmark"].as_str().map(str::to_owned));
        // SAFETY: plain kernel object creation; the guard closes it.
        let signal = HandleGuard(unsafe { CreateEventW(std::ptr::null(), 1, 1, std::ptr::null()) });
        if signal.0.is_null() {
            anyhow::bail!("CreateEventW failed (error {})", last_error());
        }
        let bookmark_xml = saved.as_deref().map(wide);
        // SAFETY: a null pointer creates an empty bookmark; otherwise the XML is a valid,
        // NUL-terminated wide string.
        let bookmark = EvtGuard(unsafe {
            EvtCreateBookmark(
                bookmark_xml
                    .as_ref()
                    .map_or(std::ptr::null(), |b| b.as_ptr()),
            )
        });
        if bookmark.0 == 0 {
            anyhow::bail!("EvtCreateBookmark failed (error {})", last_error());
        }
        let flags = match (&saved, self.start_at) {
            (Some(_), _) => EvtSubscribeStartAfterBookmark,
            (None, StartAt::Oldest) => EvtSubscribeStartAtOldestRecord,
            (None, StartAt::Newest) => EvtSubscribeToFutureEvents,
        };
        let channel = wide(&self.channel);
        let query = wide(&self.query);
        // SAFETY: the strings are NUL-terminated and outlive the call; no callback is used
        // (pull model with the signal event).
        let subscription = EvtGuard(unsafe {
            EvtSubscribe(
                0,
                signal.0,
                channel.as_ptr(),
                query.as_ptr(),
                if saved.is_some() { bookmark.0 } else { 0 },
                std::ptr::null(),
                None,
                flags,
            )
        });
        if subscription.0 == 0 {
            anyhow::bail!(
                "cannot subscribe to channel {:?} with query {:?} (error {})",
                self.channel,
                self.query,
                last_error()
            );
        }
        tracing::info!(source = %self.name, channel = %self.channel, "subscribed");
        let mut handles = [0isize; 64];
        loop {
            // SAFETY: waits on a valid event handle.
            unsafe { WaitForSingleObject(signal.0, 500) };
            let mut items = Vec::new();
            loop {
                let mut returned = 0u32;
                // SAFETY: `handles` holds 64 slots; `returned` is a valid out-pointer.
                let ok = unsafe {
                    EvtNext(
                        subscription.0,
                        handles.len() as u32,
                        handles.as_mut_ptr(),
                        0,
                        0,
                        &mut returned,
                    )
                };
                if ok == 0 {
                    let error = last_error();
                    if error != ERROR_NO_MORE_ITEMS {
                        emit.problem(format!("{}: EvtNext failed (error {error})", self.channel));
                    }
                    // SAFETY: resets a valid manual-reset event.
                    unsafe { ResetEvent(signal.0) };
                    break;
                }
                for &handle in &handles[..returned as usize] {
                    let event = EvtGuard(handle);
                    let xml = render(event.0, EvtRenderEventXml);
                    // SAFETY: both handles are valid.
                    unsafe { EvtUpdateBookmark(bookmark.0, event.0) };
                    let position = match render(bookmark.0, EvtRenderBookmark) {
                        Ok(b) => json!({ "bookmark": b }),
                        Err(e) => {
                            emit.problem(format!("{}: {e}", self.channel));
                            continue;
                        }
                    };
                    match xml.and_then(|x| to_json(&x, &self.channel)) {
                        Ok(text) => items.push(SourceItem {
                            key: self.name.clone(),
                            position,
                            event: text,
                            parsed: None,
                        }),
                        Err(e) => {
                            emit.problem(format!("{}: {e}", self.channel));
                            // Earlier events first, so positions only move forward.
                            emit.emit(std::mem::take(&mut items)).map_err(stop)?;
                            emit.mark(&self.name, position).map_err(stop)?;
                        }
                    }
                }
                if items.len() >= 500 {
                    emit.emit(std::mem::take(&mut items)).map_err(stop)?;
                }
            }
            if !items.is_empty() {
                emit.emit(items).map_err(stop)?;
            }
            emit.idle(Duration::ZERO).map_err(stop)?;
        }
    }
}
