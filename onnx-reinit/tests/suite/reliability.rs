//! Reliability (issue 13): what an attacker or a busy machine still broke, through the CLI.
//!
//! - Destinations that are not regular files (device nodes, FIFOs, sockets, folders, a symlink
//!   to a device) are refused even with `--force`, and `-o -` is a usage error.
//! - A FIFO as input is refused at once instead of blocking in `open`.
//! - `--in-place` on a hard-linked model is refused without `--force`.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bin, fixtures_dir, text};

/// A small real export, copied into `dir` as `model.onnx` (writable).
fn model_in(dir: &Path) -> PathBuf {
    let p = dir.join("model.onnx");
    fs::write(
        &p,
        fs::read(fixtures_dir().join("mlp_relu_tanh.onnx")).unwrap(),
    )
    .unwrap();
    p
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn mkfifo(p: &Path) {
    // SAFETY: a valid NUL-terminated path; mkfifo touches no other memory.
    assert_eq!(
        unsafe { libc::mkfifo(cstr(p).as_ptr(), 0o644) },
        0,
        "mkfifo"
    );
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs the CLI with `args`; if it has not exited after a minute it is killed and the test
/// fails (it hung). The limit only bounds a broken run: a correct one exits at once.
fn run_or_hang(args: &[&std::ffi::OsStr], cwd: &Path) -> Output {
    let mut child = bin()
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_mins(1) {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("onnx-reinit {args:?} hung: {}", text(&o.stderr));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// A one-line error with exit code 1 containing every part of `msg`.
fn assert_refused(o: &Output, msg: &[&str]) -> String {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    for part in msg {
        assert!(err.contains(part), "message {err:?} lacks {part:?}");
    }
    err
}

#[test]
fn special_file_destinations_are_refused_even_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let input = model_in(dir.path());
    let before = fs::read(&input).unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();

    let fifo = out.join("fifo.onnx");
    mkfifo(&fifo);
    let sock_path = out.join("sock.onnx");
    let _sock = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let folder = out.join("folder.onnx");
    fs::create_dir(&folder).unwrap();
    // A symlink to a device is refused through its target; were it not, the rename would
    // replace the link, never /dev/null itself, so this case is safe to get wrong.
    let to_null = out.join("null.onnx");
    std::os::unix::fs::symlink("/dev/null", &to_null).unwrap();
    let mut cases: Vec<(PathBuf, &str)> = vec![
        (fifo, "FIFO"),
        (sock_path, "socket"),
        (folder, "folder"),
        (to_null, "character device"),
    ];
    // A copy of /dev/null's node (major 1, minor 3), where this sandbox may create one.
    let cdev = out.join("cdev.onnx");
    // SAFETY: a valid NUL-terminated path; mknod touches no other memory.
    if unsafe {
        libc::mknod(
            cstr(&cdev).as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(1, 3),
        )
    } == 0
    {
        cases.push((cdev, "character device"));
    } else {
        eprintln!("SKIPPED the device node made with mknod: not permitted here");
    }
    let listed = names(&out);
    for (dest, kind) in &cases {
        for force in [false, true] {
            let mut args = vec![input.as_os_str(), "-o".as_ref(), dest.as_os_str()];
            if force {
                args.push("--force".as_ref());
            }
            let o = run_or_hang(&args, dir.path());
            assert_refused(
                &o,
                &[
                    &dest.display().to_string(),
                    &format!("refusing to replace a {kind}"),
                ],
            );
            assert_eq!(
                names(&out),
                listed,
                "files left or removed in {}",
                out.display()
            );
        }
        let m = fs::metadata(dest).unwrap();
        let still = match *kind {
            "FIFO" => m.file_type().is_fifo(),
            "socket" => m.file_type().is_socket(),
            "folder" => m.is_dir(),
            _ => m.file_type().is_char_device(),
        };
        assert!(still, "{} was replaced", dest.display());
    }
    assert!(
        fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert_eq!(fs::read(&input).unwrap(), before);

    // `-o -` is a usage error, not a file named `-` in the working folder.
    let o = run_or_hang(
        &[input.as_os_str(), "-o".as_ref(), "-".as_ref()],
        dir.path(),
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot be stdout"), "{err}");
    assert!(!dir.path().join("-").exists());
    // A regular file named `-`, spelt as a path, is an ordinary output.
    let o = run_or_hang(
        &[input.as_os_str(), "-o".as_ref(), "./-".as_ref()],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(dir.path().join("-").is_file());
}

#[test]
fn a_fifo_as_input_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.onnx");
    mkfifo(&fifo);
    for sub in [&[][..], &["inspect"][..]] {
        let mut args: Vec<&std::ffi::OsStr> = sub.iter().map(AsRef::as_ref).collect();
        args.push(fifo.as_os_str());
        if sub.is_empty() {
            args.push("--dry-run".as_ref());
        }
        let o = run_or_hang(&args, dir.path());
        assert_refused(
            &o,
            &[
                &fifo.display().to_string(),
                "it is a FIFO, not a regular file",
            ],
        );
    }
    assert_eq!(names(dir.path()), ["model.onnx"]);
}

#[test]
fn in_place_on_a_hard_linked_model_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let input = model_in(dir.path());
    let link = dir.path().join("link.onnx");
    fs::hard_link(&input, &link).unwrap();
    let before = fs::read(&input).unwrap();
    let o = run_or_hang(&[input.as_os_str(), "--in-place".as_ref()], dir.path());
    assert_refused(
        &o,
        &[
            &input.display().to_string(),
            "has 2 hard links",
            "use force",
        ],
    );
    assert_eq!(fs::read(&input).unwrap(), before);
    assert_eq!(fs::metadata(&input).unwrap().nlink(), 2);
    assert_eq!(names(dir.path()), ["link.onnx", "model.onnx"]);
    // With --force the model is replaced and the other link keeps the old contents, as the
    // message said.
    let o = run_or_hang(
        &[input.as_os_str(), "--in-place".as_ref(), "--force".as_ref()],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_ne!(fs::read(&input).unwrap(), before);
    assert_eq!(fs::read(&link).unwrap(), before);
    assert_eq!(fs::metadata(&input).unwrap().nlink(), 1);
}
