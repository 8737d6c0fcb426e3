use super::*;
use rand::SeedableRng;

#[test]
fn partitions_block_by_direction_and_rates_are_drawn() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let b = NodeId("b-1".into());
    let region_b = Region("b".into());
    let plan = FaultPlan {
        blocked_to_regions: [region_b.clone()].into(),
        ..Default::default()
    };
    let fate = plan.fate(&b, &region_b, &mut rng);
    assert!(fate.request_lost && !fate.response_lost);
    let plan = FaultPlan {
        blocked_from_nodes: [b.clone()].into(),
        ..Default::default()
    };
    let fate = plan.fate(&b, &region_b, &mut rng);
    assert!(!fate.request_lost && fate.response_lost);
    let plan = FaultPlan {
        drop_rate: 0.25,
        ..Default::default()
    };
    let lost = (0..4000)
        .filter(|_| plan.fate(&b, &region_b, &mut rng).request_lost)
        .count();
    assert!((800..1200).contains(&lost), "{lost} of 4000 lost at 25 %");
    assert!(FaultPlan::default().is_empty());
}

#[test]
fn bad_plans_are_refused() {
    let plan = FaultPlan {
        drop_rate: 1.5,
        ..Default::default()
    };
    assert_eq!(
        plan.validate(),
        Err(FaultPlanError::Rate {
            field: "drop_rate",
            value: 1.5
        })
    );
    let plan = FaultPlan {
        extra_delay_ms: -1.0,
        ..Default::default()
    };
    assert!(matches!(plan.validate(), Err(FaultPlanError::Delay { .. })));
    let plan: Result<FaultPlan, _> = serde_json::from_str(r#"{"drop": 1}"#);
    assert!(plan.is_err(), "unknown fields are refused");
}
