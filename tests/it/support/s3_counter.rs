//! A counting HTTP proxy in front of moto: Trino's S3 endpoint points here, so a
//! test can see every S3 request a query makes (listings and object reads).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request seen: method and request target (`/bucket/key?query`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
}

impl Request {
    /// A ListObjects(V2) call (a partition listed).
    pub fn is_list(&self) -> bool {
        self.method == "GET" && (self.target.contains("list-type=") || self.target.contains("?prefix="))
    }
}

/// The proxy: its URL and the requests it forwarded so far.
#[derive(Clone)]
pub struct Counter {
    pub url: String,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Counter {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`) on a free loopback port.
    pub fn start(upstream: &str) -> Counter {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, log) = (upstream.clone(), log.clone());
                std::thread::spawn(move || {
                    if let Ok(server) = TcpStream::connect(&upstream) {
                        relay(client, server, log);
                    }
                });
            }
        });
        Counter { url, seen }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests so far.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Copies the server's bytes back as they come; reads the client's stream
/// request by request (head, then a Content-Length body) and logs each.
fn relay(client: TcpStream, server: TcpStream, log: Arc<Mutex<Vec<Request>>>) {
    let (mut to_client, mut from_server) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(std::net::Shutdown::Both);
    });
    let mut reader = BufReader::new(client);
    let mut to_server = server;
    loop {
        let mut head = Vec::new();
        let mut length = 0usize;
        let mut first = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = to_server.shutdown(std::net::Shutdown::Both);
                    return;
                }
                Ok(_) => {}
            }
            if first.is_empty() {
                first = line.clone();
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            head.extend_from_slice(line.as_bytes());
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        let mut parts = first.split_whitespace();
        log.lock().unwrap().push(Request {
            method: parts.next().unwrap_or("").to_string(),
            target: parts.next().unwrap_or("").to_string(),
        });
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err()
            || to_server.write_all(&head).is_err()
            || to_server.write_all(&body).is_err()
        {
            return;
        }
    }
}
