//! Streaming HTTP(S) downloads into the workspace's `downloads/`.
//!
//! Bytes go to `NAME.part`; a later attempt (in this run or the next) resumes it with a
//! Range request, and the file is renamed to `NAME` once complete.

use std::error::Error;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_RANGE, RANGE};
use sha2::{Digest, Sha256};

use crate::data::fetch::FetchError;
use crate::event::{Emit, Event, Stage};
use crate::job::CancelToken;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may deliver nothing before the attempt is given up (and resumed).
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Downloads `url` into `dir` and returns the complete file. A complete file from an
/// earlier fetch of the same URL is reused; a broken-off transfer is resumed up to
/// `resume_attempts` times, and its `.part` file is kept for the next run otherwise.
pub fn download(
    url: &str,
    dir: &Path,
    resume_attempts: u32,
    emit: &dyn Emit,
    cancel: &CancelToken,
) -> Result<PathBuf, FetchError> {
    let name = file_name(url);
    let complete = dir.join(&name);
    if complete.is_file() {
        emit.info(format!("using the earlier download {} (delete it to download again)", complete.display()));
        return Ok(complete);
    }
    fs::create_dir_all(dir).map_err(FetchError::io("create", dir))?;
    let part = dir.join(format!("{name}.part"));
    let client = Client::builder()
        .user_agent(concat!("mednist/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(STALL_TIMEOUT)
        .build()
        .map_err(|e| FetchError::Request { url: url.to_string(), cause: root_cause(&e) })?;
    let mut resumes = 0;
    loop {
        match attempt(&client, url, &part, emit, cancel) {
            Ok(()) => break,
            Err(FetchError::Interrupted { done, cause, .. }) if resumes < resume_attempts => {
                resumes += 1;
                emit.warn(format!(
                    "the download broke off after {done} bytes ({cause}); resuming (attempt {resumes} of {resume_attempts})"
                ));
            }
            Err(e) => return Err(e),
        }
    }
    emit.emit(Event::StageFinished { stage: Stage::Download });
    fs::rename(&part, &complete).map_err(FetchError::io("rename", &part))?;
    Ok(complete)
}

/// `<8 hex digits of the URL's hash>-<last path segment>`: readable, and two URLs that
/// end alike (mirrors) never share a partial file.
fn file_name(url: &str) -> String {
    let last = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.path_segments().and_then(|mut s| s.next_back().map(str::to_string)))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "download".to_string());
    let last: String =
        last.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    format!("{}-{last}", hex::encode(&Sha256::digest(url.as_bytes())[..4]))
}

/// One request: continues `part` if it has bytes, else starts it.
fn attempt(client: &Client, url: &str, part: &Path, emit: &dyn Emit, cancel: &CancelToken) -> Result<(), FetchError> {
    let have = match fs::metadata(part) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(FetchError::io("read", part)(e)),
    };
    let mut request = client.get(url);
    if have > 0 {
        request = request.header(RANGE, format!("bytes={have}-"));
    }
    let mut response = request.send().map_err(|e| request_error(url, e))?;
    let broken = |done, total, cause: &str| FetchError::Interrupted {
        url: url.to_string(),
        done,
        total,
        cause: cause.to_string(),
    };
    let (file, done, total) = match response.status() {
        StatusCode::PARTIAL_CONTENT if have > 0 => match content_range(&response) {
            Some((Some(start), total)) if start == have => {
                let file = OpenOptions::new().append(true).open(part).map_err(FetchError::io("open", part))?;
                (file, have, total)
            }
            _ => {
                remove_part(part)?;
                return Err(broken(0, None, "the server resumed at another offset; starting over"));
            }
        },
        // A server that ignores Range sends the whole file again.
        StatusCode::OK => {
            let file = File::create(part).map_err(FetchError::io("create", part))?;
            (file, 0, response.content_length())
        }
        StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {
            // Nothing left to send: the part is complete if it is exactly the file's size.
            if content_range(&response).and_then(|(_, total)| total) == Some(have) {
                emit.emit(Event::StageStarted { stage: Stage::Download, total: Some(have) });
                return Ok(());
            }
            remove_part(part)?;
            return Err(broken(0, None, "the partial download does not fit the file on the server; starting over"));
        }
        status => return Err(FetchError::HttpStatus { url: url.to_string(), status }),
    };
    emit.emit(Event::StageStarted { stage: Stage::Download, total });
    emit.emit(Event::Progress { stage: Stage::Download, done, total });
    stream(&mut response, file, part, done, total, emit, cancel).map_err(|outcome| match outcome {
        Stream::Broken { done, cause } => broken(done, total, &cause),
        Stream::Failed(error) => error,
    })
}

enum Stream {
    Broken { done: u64, cause: String },
    Failed(FetchError),
}

/// Appends the body to `file`, which already holds `done` bytes.
fn stream(
    response: &mut Response,
    mut file: File,
    part: &Path,
    mut done: u64,
    total: Option<u64>,
    emit: &dyn Emit,
    cancel: &CancelToken,
) -> Result<(), Stream> {
    let mut buffer = vec![0; 1 << 16];
    loop {
        cancel.check().map_err(|cancelled| Stream::Failed(cancelled.into()))?;
        let n = match response.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Stream::Broken { done, cause: root_cause(&e) }),
        };
        file.write_all(&buffer[..n]).map_err(|e| Stream::Failed(FetchError::io("write", part)(e)))?;
        done += n as u64;
        emit.emit(Event::Progress { stage: Stage::Download, done, total });
    }
    if total.is_some_and(|total| done < total) {
        return Err(Stream::Broken { done, cause: "the connection closed early".to_string() });
    }
    file.sync_all().map_err(|e| Stream::Failed(FetchError::io("write", part)(e)))
}

fn remove_part(part: &Path) -> Result<(), FetchError> {
    fs::remove_file(part).map_err(FetchError::io("remove", part))
}

/// `Content-Range: bytes START-END/TOTAL` (or `bytes */TOTAL`) as (START, TOTAL).
fn content_range(response: &Response) -> Option<(Option<u64>, Option<u64>)> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let start = range.split_once('-').and_then(|(start, _)| start.trim().parse().ok());
    Some((start, total.trim().parse().ok()))
}

fn request_error(url: &str, error: reqwest::Error) -> FetchError {
    let cause = root_cause(&error);
    if error.is_connect() || error.is_timeout() {
        FetchError::Unreachable { url: url.to_string(), cause }
    } else {
        FetchError::Request { url: url.to_string(), cause }
    }
}

/// The innermost cause: "Connection refused (os error 111)" says more than "error
/// sending request".
fn root_cause(error: &(dyn Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_tell_urls_apart() {
        let a = file_name("https://example.org/releases/MedNIST.tar.gz");
        let b = file_name("https://mirror.example.net/MedNIST.tar.gz");
        assert!(a.ends_with("-MedNIST.tar.gz"), "{a}");
        assert_ne!(a, b);
        assert!(file_name("http://example.org/").ends_with("-download"));
        assert!(file_name("http://example.org/a%2F..%2Fb?x=1").ends_with("-a_2F.._2Fb"));
    }
}
