//! Pure arithmetic of the report: percentiles and the shortest time ARM's token buckets allow.

/// ARM's request budget per (subscription, principal): one token bucket for reads, one for writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub read_burst: f64,
    pub read_rate: f64,
    pub write_burst: f64,
    pub write_rate: f64,
}

impl Budget {
    /// ARM's documented limits (and the emulator's defaults).
    pub const ARM: Budget = Budget {
        read_burst: 250.0,
        read_rate: 25.0,
        write_burst: 200.0,
        write_rate: 10.0,
    };

    /// The same budget scaled by `fraction` (the operator keeps 90% by default).
    /// The operator's flags that set its client-side buckets to this budget.
    pub fn operator_flags(&self) -> Vec<String> {
        [
            ("--arm-write-burst", self.write_burst),
            ("--arm-write-rate", self.write_rate),
            ("--arm-read-burst", self.read_burst),
            ("--arm-read-rate", self.read_rate),
        ]
        .iter()
        .flat_map(|(k, v)| [k.to_string(), format!("{v}")])
        .collect()
    }

    pub fn scaled(self, fraction: f64) -> Budget {
        Budget {
            read_burst: self.read_burst * fraction,
            read_rate: self.read_rate * fraction,
            write_burst: self.write_burst * fraction,
            write_rate: self.write_rate * fraction,
        }
    }
}

/// The work of `commands` AKS run commands, each taking `duration` seconds at ARM, each costing
/// one write (the runCommand POST) and `reads_per_command` reads (commandResults polls).
#[derive(Debug, Clone, Copy)]
pub struct Work {
    pub commands: u64,
    pub reads_per_command: u64,
    pub duration: f64,
}

/// Seconds a bucket full at time 0 needs before it has handed out `tokens` tokens.
fn drain_time(tokens: f64, burst: f64, rate: f64) -> f64 {
    ((tokens - burst) / rate).max(0.0)
}

/// The earliest moment (seconds after the resources exist) at which all of `work` can be done:
/// the last write cannot come before the write bucket has handed out `commands` tokens, and its
/// command then still runs `duration`; every read must also have fit through the read bucket.
pub fn lower_bound(work: Work, budget: Budget) -> f64 {
    let n = work.commands as f64;
    let last_write = drain_time(n, budget.write_burst, budget.write_rate);
    let last_read = drain_time(
        n * work.reads_per_command as f64,
        budget.read_burst,
        budget.read_rate,
    );
    (last_write + work.duration).max(last_read)
}

/// Reads a client that honours `Retry-After` needs at least: one poll per elapsed interval until
/// the result is there (a client that knew the duration could do with one).
pub fn polls_honouring_retry_after(duration: f64, retry_after: f64) -> u64 {
    ((duration / retry_after).ceil() as u64).max(1)
}

/// Nearest-rank percentile (`p` in 0..=100) of `values`; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousand_two_second_commands_are_bound_by_writes() {
        let work = Work {
            commands: 1000,
            reads_per_command: 2,
            duration: 2.0,
        };
        // 200 at once, then 800 more at 10/s: the last POST at 80 s, its result at 82 s.
        assert_eq!(lower_bound(work, Budget::ARM), 82.0);
        // 90% buckets: (1000 - 180) / 9 + 2.
        let ours = lower_bound(work, Budget::ARM.scaled(0.9));
        assert!((ours - 93.111).abs() < 0.01, "{ours}");
    }

    #[test]
    fn many_polls_make_reads_the_limit() {
        let work = Work {
            commands: 1000,
            reads_per_command: 10,
            duration: 2.0,
        };
        assert_eq!(lower_bound(work, Budget::ARM), (10_000.0 - 250.0) / 25.0);
    }

    #[test]
    fn small_batches_fit_in_the_burst() {
        let work = Work {
            commands: 20,
            reads_per_command: 2,
            duration: 2.0,
        };
        assert_eq!(lower_bound(work, Budget::ARM), 2.0);
    }

    #[test]
    fn polls_round_up() {
        assert_eq!(polls_honouring_retry_after(2.0, 1.0), 2);
        assert_eq!(polls_honouring_retry_after(2.5, 1.0), 3);
        assert_eq!(polls_honouring_retry_after(0.0, 1.0), 1);
    }

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
