//! The one retry schedule: exponential backoff with full jitter.
//!
//! The wait before retry `n` (after `n` failed attempts) is drawn uniformly
//! from `[0, min(cap, initial * 2^(n-1))]` ("full jitter", AWS Architecture
//! Blog, "Exponential Backoff And Jitter"), so replicas that failed together
//! do not retry together. A [`Backoff`] optionally stops after
//! `max_attempts` attempts or once a wait would end past its budget; every
//! wait ends early when a [`CancellationToken`] fires.
//!
//! Used by the consumer loop (a retryable handler error), the DLQ writer, the
//! producer's resend loop and the trainers' MLflow retries; [`retry`] runs a
//! [`Classified`] operation under a schedule.
//!
//! ```
//! # use std::time::Duration;
//! # use kafka_utils::backoff::Backoff;
//! let mut retry = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).max_attempts(3).start_seeded(7);
//! assert!(retry.next_delay().is_some_and(|d| d <= Duration::from_millis(100))); // after attempt 1
//! assert!(retry.next_delay().is_some_and(|d| d <= Duration::from_millis(200))); // after attempt 2
//! assert_eq!(retry.next_delay(), None); // 3 attempts made
//! ```

use std::future::Future;
use std::hash::{BuildHasher as _, Hasher as _};
use std::time::{Duration, Instant};

use contracts::error::Classified;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore as _, SeedableRng as _};
use tokio_util::sync::CancellationToken;

/// A retry schedule: exponential growth from `initial` up to `cap`, full
/// jitter, and optional limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Upper bound of the first wait.
    pub initial: Duration,
    /// Upper bound of every wait.
    pub cap: Duration,
    /// Attempts in all (the first included) before giving up; `None`: no limit.
    pub max_attempts: Option<u32>,
    /// No wait may end later than this after [`Backoff::start`]; `None`: no limit.
    pub budget: Option<Duration>,
}

impl Backoff {
    /// Waits up to `initial`, doubling to at most `cap`; no limits.
    pub const fn new(initial: Duration, cap: Duration) -> Backoff {
        Backoff { initial, cap, max_attempts: None, budget: None }
    }

    /// Give up after `n` attempts in all (at least one is always made).
    pub const fn max_attempts(mut self, n: u32) -> Backoff {
        self.max_attempts = Some(n);
        self
    }

    /// Give up when the next wait would end more than `budget` after the start.
    pub const fn budget(mut self, budget: Duration) -> Backoff {
        self.budget = Some(budget);
        self
    }

    /// The upper bound of the wait after `failures` failed attempts (1-based):
    /// `min(cap, initial * 2^(failures-1))`, without jitter.
    pub fn ceiling(&self, failures: u32) -> Duration {
        // Below 2^94 ns shifted by at most 32: no overflow in u128.
        let nanos = self.initial.as_nanos() << failures.saturating_sub(1).min(32);
        if nanos >= self.cap.as_nanos() {
            return self.cap;
        }
        // Under the cap, so the seconds fit a Duration.
        Duration::new((nanos / 1_000_000_000) as u64, (nanos % 1_000_000_000) as u32)
    }

    /// Begin a schedule now, its jitter seeded at random.
    pub fn start(self) -> Retry {
        self.start_seeded(random_seed())
    }

    /// Begin a schedule now with a fixed jitter seed (tests: the same seed
    /// draws the same waits).
    pub fn start_seeded(self, seed: u64) -> Retry {
        let started = Instant::now();
        Retry {
            policy: self,
            failures: 0,
            deadline: self.budget.map(|b| started + b),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

/// One running schedule: counts failed attempts and draws the waits.
#[derive(Debug, Clone)]
pub struct Retry {
    policy: Backoff,
    failures: u32,
    deadline: Option<Instant>,
    rng: ChaCha8Rng,
}

impl Retry {
    /// Failed attempts recorded so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Record one failed attempt and return the wait before the next one, or
    /// `None` when the schedule says to give up (attempts or budget spent).
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        if self.policy.max_attempts.is_some_and(|m| self.failures >= m) {
            return None;
        }
        let wait = uniform_up_to(&mut self.rng, self.policy.ceiling(self.failures));
        match self.deadline {
            Some(deadline) if Instant::now() + wait >= deadline => None,
            _ => Some(wait),
        }
    }

    /// [`next_delay`](Retry::next_delay), then that wait unless `cancel` fires first.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> Wait {
        match self.next_delay() {
            None => Wait::Exhausted,
            Some(d) if sleep(d, cancel).await => Wait::Retry(d),
            Some(_) => Wait::Cancelled,
        }
    }
}

/// What [`Retry::wait`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Waited this long: try again.
    Retry(Duration),
    /// The schedule is spent: give up.
    Exhausted,
    /// Shutdown came first.
    Cancelled,
}

/// Sleep `wait` unless `cancel` fires first; returns whether it slept the whole wait.
pub async fn sleep(wait: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = cancel.cancelled() => false,
    }
}

/// Why [`retry`] stopped without a result.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped<E> {
    /// A permanent error: trying again cannot help.
    Permanent(E),
    /// Still failing (retryably) when the schedule was spent: the last error
    /// and the attempts made.
    Exhausted(E, u32),
    /// Shutdown came during a wait.
    Cancelled,
}

/// Run `op` until it succeeds, fails permanently ([`Classified::is_retryable`]
/// false), the schedule is spent or `cancel` fires. `on_retry` sees each
/// retryable error and the wait before the next attempt (log it, count it).
pub async fn retry<T, E, F, Fut>(
    backoff: Backoff,
    cancel: &CancellationToken,
    mut op: F,
    mut on_retry: impl FnMut(&E, Duration),
) -> Result<T, Stopped<E>>
where
    E: Classified,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut schedule = backoff.start();
    loop {
        let e = match op().await {
            Ok(v) => return Ok(v),
            Err(e) if !e.is_retryable() => return Err(Stopped::Permanent(e)),
            Err(e) => e,
        };
        let Some(wait) = schedule.next_delay() else {
            return Err(Stopped::Exhausted(e, schedule.failures()));
        };
        on_retry(&e, wait);
        if !sleep(wait, cancel).await {
            return Err(Stopped::Cancelled);
        }
    }
}

/// Uniform in `[0, max]`, at nanosecond resolution.
fn uniform_up_to(rng: &mut ChaCha8Rng, max: Duration) -> Duration {
    let span = max.as_nanos().min(u128::from(u64::MAX - 1)) as u64 + 1;
    let nanos = ((u128::from(rng.next_u64()) * u128::from(span)) >> 64) as u64;
    Duration::from_nanos(nanos)
}

/// A seed from the process's randomly keyed hasher (no RNG dependency).
fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.write_u64(std::process::id().into());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ceilings_double_from_initial_and_stop_at_the_cap() {
        let b = Backoff::new(100 * MS, 1_000 * MS);
        let ceilings: Vec<u64> = (1..=6).map(|n| b.ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(b.ceiling(0), 100 * MS, "before any failure: the first wait's bound");
        assert_eq!(b.ceiling(u32::MAX), 1_000 * MS, "no overflow however many failures");
        let huge = Backoff::new(Duration::from_secs(u64::MAX / 4), Duration::MAX);
        assert_eq!(huge.ceiling(40), Duration::MAX, "saturates instead of overflowing");
    }

    #[test]
    fn every_wait_is_within_its_ceiling_and_the_jitter_spreads_them() {
        let b = Backoff::new(100 * MS, 1_000 * MS);
        for seed in 0..200 {
            let mut r = b.start_seeded(seed);
            for n in 1..=10 {
                let d = r.next_delay().expect("no limit");
                assert!(d <= b.ceiling(n), "seed {seed}, wait {n}: {d:?} over {:?}", b.ceiling(n));
            }
        }
        // Full jitter: the waits after the 5th failure (ceiling 1 s) cover the whole range.
        let fifth: Vec<Duration> = (0..400)
            .map(|seed| {
                let mut r = b.start_seeded(seed);
                (0..4).for_each(|_| {
                    r.next_delay();
                });
                r.next_delay().expect("no limit")
            })
            .collect();
        let (lo, hi) = (fifth.iter().min().unwrap(), fifth.iter().max().unwrap());
        assert!(*lo < 50 * MS && *hi > 950 * MS, "waits from {lo:?} to {hi:?}");
        let mean = fifth.iter().sum::<Duration>() / fifth.len() as u32;
        assert!(mean > 400 * MS && mean < 600 * MS, "mean {mean:?}, expected about 500 ms");
    }

    #[test]
    fn the_same_seed_draws_the_same_schedule() {
        let b = Backoff::new(10 * MS, 500 * MS);
        let draw = |seed| {
            let mut r = b.start_seeded(seed);
            (0..8).map(|_| r.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }

    #[test]
    fn max_attempts_counts_the_first_attempt() {
        let mut r = Backoff::new(MS, MS).max_attempts(3).start_seeded(1);
        assert!(r.next_delay().is_some());
        assert!(r.next_delay().is_some());
        assert_eq!(r.next_delay(), None);
        assert_eq!(r.failures(), 3);
        let mut once = Backoff::new(MS, MS).max_attempts(1).start_seeded(1);
        assert_eq!(once.next_delay(), None, "one attempt in all: no retry");
        let mut zero = Backoff::new(MS, MS).max_attempts(0).start_seeded(1);
        assert_eq!(zero.next_delay(), None);
    }

    #[test]
    fn a_wait_that_would_end_past_the_budget_is_not_begun() {
        let mut r =
            Backoff::new(Duration::from_secs(60), Duration::from_secs(60)).budget(Duration::ZERO).start_seeded(3);
        assert_eq!(r.next_delay(), None);
        let mut roomy = Backoff::new(MS, MS).budget(Duration::from_secs(60)).start_seeded(3);
        assert!((0..100).all(|_| roomy.next_delay().is_some()));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{0:?}")]
    struct E(contracts::error::Code);
    impl Classified for E {
        fn code(&self) -> contracts::error::Code {
            self.0
        }
    }

    #[tokio::test]
    async fn retry_retries_retryable_errors_and_stops_at_permanent_ones() {
        use contracts::error::Code;
        let cancel = CancellationToken::new();
        let fast = Backoff::new(MS, MS).max_attempts(5);
        let mut calls = 0;
        let ok = retry(
            fast,
            &cancel,
            || {
                calls += 1;
                let n = calls;
                async move { if n < 3 { Err(E(Code::S3Unavailable)) } else { Ok(n) } }
            },
            |_, _| {},
        )
        .await;
        assert!(matches!(ok, Ok(3)), "{ok:?}");

        let mut calls = 0;
        let permanent = retry(
            fast,
            &cancel,
            || {
                calls += 1;
                async { Err::<(), _>(E(Code::ObjectNotFound)) }
            },
            |_, _| {},
        )
        .await;
        assert!(matches!(permanent, Err(Stopped::Permanent(E(Code::ObjectNotFound)))));
        assert_eq!(calls, 1);

        let mut retries = 0;
        let spent =
            retry(fast, &cancel, || async { Err::<(), _>(E(Code::MlflowUnavailable)) }, |_, _| retries += 1).await;
        assert!(matches!(spent, Err(Stopped::Exhausted(E(Code::MlflowUnavailable), 5))), "{spent:?}");
        assert_eq!(retries, 4);
    }

    #[tokio::test]
    async fn a_cancelled_wait_returns_at_once() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let started = Instant::now();
        let mut r = Backoff::new(Duration::from_secs(30), Duration::from_secs(30)).start_seeded(9);
        // Draw until a wait is long enough to notice (almost always the first).
        let outcome = loop {
            match r.wait(&cancel).await {
                Wait::Retry(d) if d < 10 * MS => continue,
                other => break other,
            }
        };
        assert_eq!(outcome, Wait::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
