//! The hot-function workload: open and close /dev/null in a loop and
//! report ns per iteration over batches, as JSON.
//!
//!   syscall-loop BATCHES ITERATIONS_PER_BATCH

use std::ffi::CString;
use std::time::Instant;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let (batches, per_batch) = match args.as_slice() {
        [b, i] => (*b, *i),
        _ => {
            eprintln!("usage: syscall-loop BATCHES ITERATIONS_PER_BATCH");
            std::process::exit(2);
        }
    };
    let path = CString::new("/dev/null").expect("no NUL");
    let mut per_iteration = Vec::with_capacity(batches as usize);
    for _ in 0..batches {
        let t0 = Instant::now();
        for _ in 0..per_batch {
            // SAFETY: a valid NUL-terminated path; the fd is closed at once.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
            assert!(fd >= 0, "open /dev/null failed");
            // SAFETY: closing the fd just opened.
            unsafe { libc::close(fd) };
        }
        per_iteration.push(t0.elapsed().as_nanos() as u64 / per_batch.max(1));
    }
    println!("{}", ksw_bench::summary(per_iteration));
}
