//! The one way every property here runs: a fixed RNG seed (a CI run replays exactly the
//! cases of every other run), no failure persistence (nothing is written next to the
//! sources), a case count set here and not by the environment, and the time taken printed
//! (`cargo test -- --nocapture` shows it; nothing asserts on it).
//!
//! Speed in a debug build decides the generators: proptest's RNG is XorShift (ChaCha,
//! reseeded per case, costs ~80 µs a case unoptimised), and the 10^5-case properties draw
//! their structured inputs from one buffer of random bytes ([`Entropy`], read by
//! [`Source`]) instead of a tree of strategies per character (~5 µs a character).

use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::{NewTree, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseResult, TestRunner};

/// What the issue asks of each property: at least 10^5 generated cases per run.
pub const CASES: u32 = 100_000;

/// The seed of every run. Change it to explore other cases; a failure prints its input.
const SEED: u64 = 0x5eed_0014;

/// Run `test` on `cases` values of `strategy`; a failing case (an `Err` or a panic) is
/// shrunk and the test panics with the minimal input.
pub fn check<S>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::XorShift,
        rng_seed: RngSeed::Fixed(SEED),
        max_shrink_iters: 4_096,
        // Strategies here do not filter, so a reject means a bug in the strategy.
        max_global_rejects: 0,
        fork: false,
        timeout: 0,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    let cpu = thread_cpu();
    let result = runner.run(&strategy, test);
    let cpu = thread_cpu().zip(cpu).map(|(b, a)| b.saturating_sub(a));
    eprintln!(
        "property {name}: {cases} cases in {:.2?} (this thread's CPU time: {})",
        started.elapsed(),
        cpu.map_or("unknown".into(), |c| format!("{c:.2?}")),
    );
    if let Err(e) = result {
        panic!("property {name} failed (seed {SEED:#x}): {e}");
    }
}

/// CPU time of the calling thread (Linux), which a busy machine inflates less than the
/// wall clock.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which ends at the last ')'): state is field 3, utime
    // and stime are fields 14 and 15, in clock ticks (100 per second on Linux).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// `len` random bytes, shrunk by cutting them shorter, then by zeroing bytes one at a
/// time; a [`Source`] reads past the end as zeros, and every reader here turns a zero into
/// its simplest choice.
#[derive(Debug, Clone, Copy)]
pub struct Entropy(pub usize);

pub struct EntropyTree {
    bytes: Vec<u8>,
    /// Length search: `lo..=hi` is still open, `curr` is being tried.
    lo: usize,
    curr: usize,
    hi: usize,
    /// Zeroing: the next byte to try, and the one being tried with its old value.
    next_zero: usize,
    zeroed: Option<(usize, u8)>,
}

impl Strategy for Entropy {
    type Tree = EntropyTree;
    type Value = Vec<u8>;

    fn new_tree(&self, runner: &mut TestRunner) -> NewTree<Self> {
        let mut bytes = vec![0; self.0];
        runner.rng().fill_bytes(&mut bytes);
        Ok(EntropyTree {
            bytes,
            lo: 0,
            curr: self.0,
            hi: self.0,
            next_zero: 0,
            zeroed: None,
        })
    }
}

impl ValueTree for EntropyTree {
    type Value = Vec<u8>;

    fn current(&self) -> Vec<u8> {
        self.bytes[..self.curr].to_vec()
    }

    fn simplify(&mut self) -> bool {
        if self.hi > self.lo {
            // A binary search on the length, as proptest shrinks integers.
            self.hi = self.curr;
            if self.reposition() {
                return true;
            }
            self.lo = self.hi;
        }
        self.zeroed = None;
        while self.next_zero < self.curr {
            let i = self.next_zero;
            self.next_zero += 1;
            if self.bytes[i] != 0 {
                self.zeroed = Some((i, self.bytes[i]));
                self.bytes[i] = 0;
                return true;
            }
        }
        false
    }

    fn complicate(&mut self) -> bool {
        if let Some((i, b)) = self.zeroed.take() {
            self.bytes[i] = b;
            return true;
        }
        if self.hi <= self.lo {
            return false;
        }
        self.lo = self.curr + 1;
        self.reposition()
    }
}

impl EntropyTree {
    fn reposition(&mut self) -> bool {
        let mid = self.lo + (self.hi - self.lo) / 2;
        if mid == self.curr {
            return false;
        }
        self.curr = mid;
        true
    }
}

/// Reads choices from random bytes (zeros once they run out).
pub struct Source<'a>(&'a [u8]);

impl<'a> Source<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Source(bytes)
    }

    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// 0 to `n - 1` (0 when `n` is 0); `n` at most 2^16.
    pub fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let v = usize::from(self.byte()) << 8 | usize::from(self.byte());
        v % n
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Up to `max` bytes.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.byte()).collect()
    }

    /// Mostly the characters encoders must escape and printable ASCII; now and then
    /// non-ASCII or any character at all.
    pub fn hostile_char(&mut self) -> char {
        match self.byte() {
            0..=99 => self.pick(SPECIALS),
            100..=199 => char::from(0x20 + self.byte() % 95),
            200..=229 => self.pick(NON_ASCII),
            _ => {
                let v = u32::from(self.byte()) << 16 | u32::from(self.byte()) << 8;
                char::from_u32((v | u32::from(self.byte())) % 0x11_0000).unwrap_or('\u{fffd}')
            }
        }
    }

    /// 0 to `max` characters of [`Source::hostile_char`].
    pub fn hostile_string(&mut self, max: usize) -> String {
        let n = self.below(max + 1);
        (0..n).map(|_| self.hostile_char()).collect()
    }
}

/// What breaks naive header, DN and XFCC encoders.
const SPECIALS: &[char] = &[
    ',', ';', '=', '"', '\\', '+', '<', '>', '#', ' ', '%', '/', ':', '\t', '\n', '\r', '\0',
    '\u{7f}',
];

const NON_ASCII: &[char] = &[
    'é',
    'ü',
    'ß',
    '\u{80}',
    '\u{a0}',
    '\u{ff}',
    '€',
    '\u{fffd}',
    '\u{ffff}',
    '😀',
    '\u{10ffff}',
];

/// Bytes that mean something to the parsers under test.
const INTERESTING: &[u8] = b"\"\\=,;.:/&%+-_ \t\r\n[]{}#0123456789aAzZ\x00\x7f\xc3\xff";

impl Source<'_> {
    /// A byte that is often one the parsers care about.
    pub fn interesting_byte(&mut self) -> u8 {
        if self.byte() < 160 {
            self.pick(INTERESTING)
        } else {
            self.byte()
        }
    }

    /// 1 to 4 random edits of `bytes`: a bit flip, a byte set, inserted or deleted, a
    /// truncation, or a slice copied elsewhere.
    pub fn mutate(&mut self, bytes: &mut Vec<u8>) {
        for _ in 0..=self.below(4) {
            let len = bytes.len();
            match self.below(11) {
                0..=2 if len > 0 => {
                    let i = self.below(len);
                    bytes[i] ^= 1 << (self.byte() % 8);
                }
                3 | 4 if len > 0 => {
                    let i = self.below(len);
                    bytes[i] = self.interesting_byte();
                }
                5 | 6 => {
                    let i = self.below(len + 1);
                    let b = self.interesting_byte();
                    bytes.insert(i, b);
                }
                7 | 8 if len > 0 => {
                    bytes.remove(self.below(len));
                }
                9 => bytes.truncate(self.below(len + 1)),
                10 if len > 0 => {
                    let start = self.below(len);
                    let n = self.below((len - start).min(64)) + 1;
                    let piece = bytes[start..start + n].to_vec();
                    let at = self.below(len + 1);
                    bytes.splice(at..at, piece);
                }
                _ => {}
            }
        }
    }
}
