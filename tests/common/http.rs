//! A small HTTP/1.1 server on 127.0.0.1 for download tests. It serves fixed bodies,
//! honours `Range: bytes=N-` (206, or 416 past the end), can cut its first response off
//! mid-body, and records every request it gets.
// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// What the server answers on one path.
#[derive(Clone)]
pub struct Route {
    body: Arc<Vec<u8>>,
    /// Send only this many body bytes of the first response, then close the connection.
    cut_first_at: Option<usize>,
    ignore_range: bool,
}

impl Route {
    pub fn new(body: Vec<u8>) -> Self {
        Self { body: Arc::new(body), cut_first_at: None, ignore_range: false }
    }

    pub fn cut_first_at(mut self, bytes: usize) -> Self {
        self.cut_first_at = Some(bytes);
        self
    }

    /// Answer every request with the whole body (200), as servers without Range support do.
    pub fn ignoring_range(mut self) -> Self {
        self.ignore_range = true;
        self
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    /// Header names in lowercase.
    pub headers: HashMap<String, String>,
}

impl Request {
    pub fn range(&self) -> Option<&str> {
        self.headers.get("range").map(String::as_str)
    }
}

pub struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

struct Shared {
    routes: HashMap<String, (Route, AtomicBool)>,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl TestServer {
    /// Starts serving `routes` (path, route) on a free port; runs until the test ends.
    pub fn start(routes: Vec<(&str, Route)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            routes: routes
                .into_iter()
                .map(|(path, route)| (path.to_string(), (route, AtomicBool::new(false))))
                .collect(),
            requests: Arc::clone(&requests),
        });
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&shared);
                thread::spawn(move || serve(stream, &shared));
            }
        });
        Self { addr, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let range_start = headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|start| start.parse::<usize>().ok());
    shared.requests.lock().unwrap().push(Request { headers });

    let mut stream = stream;
    let Some((route, served_once)) = shared.routes.get(&path) else {
        let _ = write!(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let body = route.body.as_slice();
    let (head, start) = match range_start.filter(|_| !route.ignore_range) {
        Some(start) if start >= body.len() => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\n",
                body.len()
            );
            (head, body.len())
        }
        Some(start) => {
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\n",
                body.len() - 1,
                body.len(),
                body.len() - start
            );
            (head, start)
        }
        None => (format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", body.len()), 0),
    };
    let mut end = body.len();
    if let Some(cut) = route.cut_first_at
        && !served_once.swap(true, Ordering::SeqCst)
    {
        end = end.min(start + cut);
    }
    if write!(stream, "{head}Connection: close\r\n\r\n").is_ok() {
        let _ = stream.write_all(&body[start..end]);
    }
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}
