//! The workloads of `cartwheel bench` and their operation mix: which step a client takes
//! next, and the operations whose latencies get a histogram each. Deterministic: the
//! random source comes in as an argument; no I/O, no clock.

use rand::Rng;

/// Share of session reads in `session-read` (the rest are cart adds).
pub const SESSION_READ_SHARE: f64 = 0.9;
/// Share of session reads in `cart-write` (the rest are cart adds).
pub const CART_WRITE_READ_SHARE: f64 = 0.5;
/// Distinct skus a cart add picks from: enough that a hot session's lines stay far below
/// the per-line quantity cap within any bench run.
pub const CART_SKUS: u32 = 64;

/// What each client does in a loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Plain key gets and puts (`--read-ratio`).
    Kv,
    /// 90 % session reads, 10 % cart adds, on sessions logged in before timing.
    SessionRead,
    /// 50 % session reads, 50 % cart adds, on sessions logged in before timing.
    CartWrite,
    /// A login, a validation of the new token, then its logout.
    LoginStorm,
}

impl Workload {
    pub const ALL: [Workload; 4] = [
        Workload::Kv,
        Workload::SessionRead,
        Workload::CartWrite,
        Workload::LoginStorm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Kv => "kv",
            Workload::SessionRead => "session-read",
            Workload::CartWrite => "cart-write",
            Workload::LoginStorm => "login-storm",
        }
    }

    /// Whether sessions are logged in before timing (one per key).
    pub fn needs_sessions(self) -> bool {
        matches!(self, Workload::SessionRead | Workload::CartWrite)
    }

    /// The operations this workload records, in the order the summary lists them.
    pub fn ops(self) -> &'static [Op] {
        match self {
            Workload::Kv => &[Op::Read, Op::Write],
            Workload::SessionRead | Workload::CartWrite => &[Op::Read, Op::CartAdd],
            Workload::LoginStorm => &[Op::Login, Op::Validate, Op::Logout],
        }
    }

    /// The next step of a client; `read_ratio` applies to `kv` only.
    pub fn pick<R: Rng>(self, rng: &mut R, read_ratio: f64) -> Step {
        let read_share = match self {
            Workload::Kv => {
                return if rng.gen_bool(read_ratio) {
                    Step::Read
                } else {
                    Step::Write
                };
            }
            Workload::LoginStorm => return Step::LoginStorm,
            Workload::SessionRead => SESSION_READ_SHARE,
            Workload::CartWrite => CART_WRITE_READ_SHARE,
        };
        if rng.gen_bool(read_share) {
            Step::SessionRead
        } else {
            Step::CartAdd {
                sku: rng.gen_range(0..CART_SKUS),
            }
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

impl std::str::FromStr for Workload {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Workload::ALL
            .into_iter()
            .find(|workload| workload.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
                format!("{text}: expected one of {}", names.join(", "))
            })
    }
}

/// One step of a client: one request, or for a login storm three in a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Read,
    Write,
    SessionRead,
    CartAdd { sku: u32 },
    LoginStorm,
}

/// A timed operation; each has its own histogram, named by `name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A kv get or a session read.
    Read,
    /// A kv put.
    Write,
    CartAdd,
    Login,
    /// The read of a token just made by a login.
    Validate,
    Logout,
}

impl Op {
    pub const COUNT: usize = 6;
    pub const ALL: [Op; Op::COUNT] = [
        Op::Read,
        Op::Write,
        Op::CartAdd,
        Op::Login,
        Op::Validate,
        Op::Logout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::CartAdd => "cart_add",
            Op::Login => "login",
            Op::Validate => "validate",
            Op::Logout => "logout",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The name of sku `index` in a cart.
pub fn sku_name(index: u32) -> String {
    format!("sku-{index}")
}

/// The user of session (or login storm key) `index`.
pub fn user_name(index: u64) -> String {
    format!("bench-user-{index}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn workloads_parse_by_name_and_refuse_others_listing_the_choices() {
        for workload in Workload::ALL {
            assert_eq!(workload.name().parse::<Workload>(), Ok(workload));
            assert_eq!(workload.to_string(), workload.name());
        }
        let error = "session".parse::<Workload>().unwrap_err();
        assert!(
            error.contains("kv, session-read, cart-write, login-storm"),
            "{error}"
        );
        assert!("".parse::<Workload>().is_err());
        assert!("KV".parse::<Workload>().is_err());
    }

    #[test]
    fn op_indexes_match_their_place_and_names_are_distinct() {
        for (place, op) in Op::ALL.iter().enumerate() {
            assert_eq!(op.index(), place);
        }
        let mut names: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Op::COUNT);
    }

    /// Draws `draws` steps and returns the share of reads (kv or session).
    fn read_share(workload: Workload, read_ratio: f64, seed: u64, draws: u32) -> f64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut reads = 0u32;
        for _ in 0..draws {
            match workload.pick(&mut rng, read_ratio) {
                Step::Read | Step::SessionRead => reads += 1,
                Step::CartAdd { sku } => assert!(sku < CART_SKUS),
                Step::Write => assert_eq!(workload, Workload::Kv),
                Step::LoginStorm => assert_eq!(workload, Workload::LoginStorm),
            }
        }
        f64::from(reads) / f64::from(draws)
    }

    #[test]
    fn mixes_respect_their_ratios_over_many_draws() {
        let seed: u64 = rand::random();
        println!("seed {seed}");
        let draws = 100_000;
        // Five standard deviations of a binomial share at p = 0.5 over 100 000 draws.
        let tolerance = 5.0 * (0.25f64 / f64::from(draws)).sqrt();
        for (workload, read_ratio, expected) in [
            (Workload::Kv, 0.5, 0.5),
            (Workload::Kv, 0.95, 0.95),
            (Workload::Kv, 0.0, 0.0),
            (Workload::Kv, 1.0, 1.0),
            // read_ratio is ignored by the session workloads.
            (Workload::SessionRead, 0.0, SESSION_READ_SHARE),
            (Workload::CartWrite, 1.0, CART_WRITE_READ_SHARE),
            (Workload::LoginStorm, 0.5, 0.0),
        ] {
            let share = read_share(workload, read_ratio, seed, draws);
            assert!(
                (share - expected).abs() <= tolerance,
                "{workload} at read ratio {read_ratio}: {share} reads, expected {expected} \
                 (seed {seed})"
            );
        }
    }

    #[test]
    fn cart_adds_spread_over_every_sku() {
        let seed: u64 = rand::random();
        println!("seed {seed}");
        let mut rng = StdRng::seed_from_u64(seed);
        let mut seen = vec![0u32; CART_SKUS as usize];
        for _ in 0..50_000 {
            if let Step::CartAdd { sku } = Workload::CartWrite.pick(&mut rng, 0.5) {
                seen[sku as usize] += 1;
            }
        }
        // About 390 each; none may be starved.
        assert!(
            seen.iter().all(|count| *count > 200),
            "{seen:?} (seed {seed})"
        );
    }

    #[test]
    fn each_workload_records_the_ops_its_steps_make() {
        assert_eq!(Workload::Kv.ops(), &[Op::Read, Op::Write]);
        assert_eq!(Workload::SessionRead.ops(), &[Op::Read, Op::CartAdd]);
        assert_eq!(Workload::CartWrite.ops(), &[Op::Read, Op::CartAdd]);
        assert_eq!(
            Workload::LoginStorm.ops(),
            &[Op::Login, Op::Validate, Op::Logout]
        );
        assert!(Workload::SessionRead.needs_sessions());
        assert!(!Workload::LoginStorm.needs_sessions());
        assert!(!Workload::Kv.needs_sessions());
    }
}
