use super::*;
use crate::crdt::Doc;
use crate::ring::position_in_partition;

const PARTITIONS: u32 = 1;

fn entry(key: &str) -> PartitionEntry {
    let key = ObjectKey::new(Class::Resp, key.as_bytes());
    let value = crate::crdt::redis::RedisValue::default();
    PartitionEntry {
        key: key.storage_bytes(),
        object: Object::Doc(Doc::Redis(value)),
    }
}

fn position(key: &str) -> u32 {
    position_in_partition(
        ObjectKey::new(Class::Resp, key.as_bytes()).hash(),
        PARTITIONS,
    )
}

/// Keys sorted by position.
fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    names.sort_by_key(|name| (position(name), name.clone()));
    names
}

fn names(page: &ScanPage) -> Vec<String> {
    page.entries
        .iter()
        .map(|(key, _)| String::from_utf8_lossy(&key.key).into_owned())
        .collect()
}

#[test]
fn a_merged_page_ends_where_the_shortest_cut_page_ends() {
    let all = sorted(&["a", "b", "c", "d", "e"]);
    let full: Vec<PartitionEntry> = all.iter().map(|name| entry(name)).collect();
    let short: Vec<PartitionEntry> = all[..2].iter().map(|name| entry(name)).collect();
    let page = merge_pages(vec![(full, false), (short, true)], 0, PARTITIONS);
    assert_eq!(names(&page), all[..2].to_vec());
    assert_eq!(page.next, Some(position(&all[1]) + 1));
}

#[test]
fn a_key_one_replica_lacks_is_still_listed_once() {
    let all = sorted(&["a", "b", "c"]);
    let first: Vec<PartitionEntry> = all.iter().map(|name| entry(name)).collect();
    let second: Vec<PartitionEntry> = vec![entry(&all[0]), entry(&all[2])];
    let page = merge_pages(vec![(first, false), (second, false)], 0, PARTITIONS);
    assert_eq!(names(&page), all);
    assert_eq!(page.next, None);
}

#[test]
fn keys_before_the_page_start_are_left_out() {
    let all = sorted(&["a", "b", "c"]);
    let from = position(&all[1]);
    let entries: Vec<PartitionEntry> = all.iter().map(|name| entry(name)).collect();
    let page = merge_pages(vec![(entries, false)], from, PARTITIONS);
    assert_eq!(names(&page), all[1..].to_vec());
}
