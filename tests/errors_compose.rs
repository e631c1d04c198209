//! Every public error type of green-core is `Send + Sync + 'static`, so `?`
//! takes it into `Box<dyn Error + Send + Sync>` (what anyhow and most
//! applications use), and the original panic payload stays reachable.

use std::error::Error;
use std::time::Duration;

use green_core::{ErrorKind, GreenletError, GreenletExit, LoopExit, Timeout};

type AppResult<T> = Result<T, Box<dyn Error + Send + Sync + 'static>>;

/// Compiles only if `E` can be boxed as an application error.
fn is_app_error<E: Error + Send + Sync + 'static>() {}

#[test]
fn every_public_error_type_is_send_sync_static() {
    is_app_error::<GreenletError>();
    is_app_error::<Timeout>();
    is_app_error::<LoopExit>();
    is_app_error::<GreenletExit>();
}

fn worker_result() -> AppResult<u32> {
    let g = green_core::spawn(|| -> u32 { panic!("disk on fire") });
    let value = g.get()?;
    Ok(value)
}

fn timed_out() -> AppResult<()> {
    Timeout::run(Duration::from_millis(1), || {
        green_core::sleep(Duration::from_secs(10));
    })?;
    Ok(())
}

#[test]
fn question_mark_takes_greenlet_and_timeout_errors_into_an_app_error() {
    green_core::run(|| {
        let e = worker_result().unwrap_err();
        let e = e.downcast::<GreenletError>().expect("a GreenletError");
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert!(e.to_string().contains("disk on fire"));

        let e = timed_out().unwrap_err();
        assert!(e.downcast_ref::<Timeout>().is_some(), "{e}");
    });
}

#[test]
fn an_error_crosses_threads_and_the_payload_stays_reachable() {
    let (error, payload) = green_core::run(|| {
        let g = green_core::spawn(|| -> u8 { std::panic::panic_any(42_i64) });
        let error = g.get().unwrap_err();
        (error, g.take_exception_payload())
    });
    let from_thread = std::thread::spawn(move || error.to_string())
        .join()
        .unwrap();
    assert!(
        from_thread.contains("non-string panic payload"),
        "{from_thread}"
    );
    let payload = payload.expect("the original payload");
    assert_eq!(payload.downcast_ref::<i64>(), Some(&42));
}
