use super::*;

#[test]
fn shipped_scenarios_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sim");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let scenario = Scenario::load(&path)
                .unwrap_or_else(|error| panic!("{}: {error:?}", path.display()));
            assert_eq!(
                Some(scenario.name.as_str()),
                path.file_stem().and_then(|s| s.to_str())
            );
        }
    }
}

#[test]
fn fault_schedules_parse_in_time_order_and_refuse_bad_steps() {
    let base = "name = \"x\"\nduration_s = 10\n[workload]\nclients_per_region = 1\nread_fraction = 0.5\nkeys_per_client = 1\nvalue_bytes = 64\n";
    let text = format!("{base}[[faults]]\nat_s = 5\naction = \"leave\"\nnode = \"a-1\"\n[[faults]]\nat_s = 2\naction = \"join\"\nregion = \"a\"\n");
    let scenario = Scenario::parse(&text).unwrap();
    assert_eq!(
        scenario.faults[0].action,
        FaultAction::Join { region: "a".into() }
    );
    assert_eq!(
        scenario.faults[1].action,
        FaultAction::Leave { node: "a-1".into() }
    );
    let late = format!("{base}[[faults]]\nat_s = 50\naction = \"kill\"\nnode = \"a-1\"\n");
    assert!(format!("{:#}", Scenario::parse(&late).unwrap_err()).contains("faults[0].at_s"));
    let unknown = format!("{base}[[faults]]\nat_s = 1\naction = \"explode\"\n");
    assert!(Scenario::parse(&unknown).is_err());
}

#[test]
fn errors_name_the_field() {
    let text = "name = \"x\"\nduration_s = 1\n[workload]\nclients_per_region = 1\nread_fraction = 1.5\nkeys_per_client = 1\nvalue_bytes = 64\n";
    let message = format!("{:#}", Scenario::parse(text).unwrap_err());
    assert!(message.contains("read_fraction"), "{message}");
    let text = text.replace(
        "read_fraction = 1.5",
        "read_fraction = 0.5\nwrite = \"most\"",
    );
    let message = format!("{:#}", Scenario::parse(&text).unwrap_err());
    assert!(
        message.contains("workload.write") && message.contains("most"),
        "{message}"
    );
    let text = text.replace("write = \"most\"", "colour = 1");
    assert!(format!("{:#}", Scenario::parse(&text).unwrap_err()).contains("colour"));
}

#[test]
fn the_session_workload_takes_its_own_fields_only() {
    let base =
        "name = \"x\"\nduration_s = 10\n[workload]\nkind = \"sessions\"\nclients_per_region = 2\n";
    let scenario = Scenario::parse(&format!("{base}[sessions]\nusers_per_client = 3\n")).unwrap();
    match scenario.workload.kind {
        WorkloadKind::Sessions(mix) => assert_eq!(mix.users_per_client, 3),
        WorkloadKind::Kv(_) => panic!("a session workload parsed as kv"),
    }
    assert!(Scenario::parse(base).is_ok());
    let mixed = format!("{base}read_fraction = 0.5\n");
    assert!(format!("{:#}", Scenario::parse(&mixed).unwrap_err()).contains("read_fraction"));
    let kv = "name = \"x\"\nduration_s = 10\n[workload]\nclients_per_region = 1\nread_fraction = 0.5\nkeys_per_client = 1\n";
    assert!(format!("{:#}", Scenario::parse(kv).unwrap_err()).contains("value_bytes"));
    let refused = format!("{base}[sessions]\nclients_per_region = 2\n");
    let message = format!("{:#}", Scenario::parse(&refused).unwrap_err());
    assert!(message.contains("sessions.clients_per_region"), "{message}");
}

#[test]
fn a_kv_scenario_with_a_sessions_table_runs_session_clients_beside_it() {
    let kv = "name = \"x\"\nduration_s = 10\n[workload]\nclients_per_region = 3\nread_fraction = 0.5\nkeys_per_client = 1\nvalue_bytes = 64\n";
    match Scenario::parse(kv).unwrap().workload.kind {
        WorkloadKind::Kv(None) => {}
        other => panic!("a kv scenario without [sessions] runs {other:?}"),
    }
    let beside = format!("{kv}[sessions]\n");
    match Scenario::parse(&beside).unwrap().workload.kind {
        WorkloadKind::Kv(Some(beside)) => {
            assert_eq!(beside.clients_per_region, SESSION_CLIENTS_BESIDE_DEFAULT)
        }
        other => panic!("[sessions] beside kv parsed as {other:?}"),
    }
    let four = format!("{kv}[sessions]\nclients_per_region = 4\nusers_per_client = 2\n");
    match Scenario::parse(&four).unwrap().workload.kind {
        WorkloadKind::Kv(Some(beside)) => {
            assert_eq!(beside.clients_per_region, 4);
            assert_eq!(beside.mix.users_per_client, 2);
        }
        other => panic!("[sessions] beside kv parsed as {other:?}"),
    }
    let zero = format!("{kv}[sessions]\nclients_per_region = 0\n");
    assert!(format!("{:#}", Scenario::parse(&zero).unwrap_err()).contains("clients_per_region"));
}
