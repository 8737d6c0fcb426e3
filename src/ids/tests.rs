use super::*;

#[test]
fn names_follow_dns_label_rules() {
    assert!(NodeId::new("us-east-1").is_ok());
    assert_eq!(NodeId::new(""), Err(NameError::Length(String::new())));
    assert!(matches!(NodeId::new("Us"), Err(NameError::Characters(_))));
    assert!(matches!(Region::new("-a"), Err(NameError::Characters(_))));
    assert!(matches!(
        Region::new(&"a".repeat(64)),
        Err(NameError::Length(_))
    ));
}
