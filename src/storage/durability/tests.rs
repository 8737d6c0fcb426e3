use super::*;
use proptest::prelude::*;

#[test]
fn parses_the_flag_values() {
    assert_eq!("flush".parse(), Ok(Durability::FlushEachWrite));
    assert_eq!(
        "group:2".parse(),
        Ok(Durability::GroupCommit { max_delay_ms: 2 })
    );
    assert_eq!(
        "group:0".parse(),
        Ok(Durability::GroupCommit { max_delay_ms: 0 })
    );
    assert_eq!(
        Durability::default(),
        Durability::GroupCommit { max_delay_ms: 2 }
    );
    assert_eq!(Durability::default().to_string(), "group:2");
    assert_eq!("none".parse(), Ok(Durability::Memory));
    assert_eq!(Durability::Memory.to_string(), "none");
}

#[test]
fn refuses_bad_flags_with_the_reason() {
    for input in ["", "Flush", "group", "fsync", "flush:1", "None", "none:1"] {
        assert_eq!(
            input.parse::<Durability>(),
            Err(DurabilityParseError::Unknown {
                input: input.to_string()
            }),
            "{input:?}"
        );
    }
    for input in [
        "group:",
        "group:x",
        "group:-1",
        "group:+3",
        "group: 2",
        "group:99999999999999999999",
    ] {
        assert_eq!(
            input.parse::<Durability>(),
            Err(DurabilityParseError::BadDelay {
                input: input.to_string()
            }),
            "{input:?}"
        );
    }
    let too_large = format!("group:{}", GROUP_COMMIT_DELAY_MS_MAX + 1);
    assert_eq!(
        too_large.parse::<Durability>(),
        Err(DurabilityParseError::DelayTooLarge {
            delay_ms: GROUP_COMMIT_DELAY_MS_MAX + 1,
            max_ms: GROUP_COMMIT_DELAY_MS_MAX
        })
    );
    let message = "fsync".parse::<Durability>().unwrap_err().to_string();
    assert!(message.contains("group:<ms>"), "{message}");
}

proptest! {
    #[test]
    fn display_round_trips(delay in 0..=GROUP_COMMIT_DELAY_MS_MAX, each in any::<bool>()) {
        let durability = if each {
            Durability::FlushEachWrite
        } else {
            Durability::GroupCommit { max_delay_ms: delay }
        };
        prop_assert_eq!(durability.to_string().parse::<Durability>(), Ok(durability));
    }
}
