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
mod tests;
