//! Host-side API against the system libtraceevent, on the fixtures captured
//! from the real module (perf-plugin/fixtures).

use std::path::PathBuf;

use traceevent::host::{Error, Tep};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn hit_tep() -> Tep {
    let mut tep = Tep::new().expect("tep_alloc");
    tep.parse_event("kstackwatch", &read("ksw_hit.format"))
        .expect("parse ksw_hit.format");
    tep
}

/// The raw `ksw_hit` record of silent.perf.data: the PERF_SAMPLE_RAW payload
/// (a u32 size, then the record, starting with common_type = 474) of the
/// writer's sample (common_pid 85).
fn hit_record() -> Vec<u8> {
    let file = std::fs::read(fixture("silent.perf.data")).expect("silent.perf.data");
    let u16_at = |p: usize| u16::from_le_bytes([file[p], file[p + 1]]);
    let u32_at = |p: usize| u32::from_le_bytes(file[p..p + 4].try_into().unwrap());
    let found: Vec<Vec<u8>> = (4..file.len().saturating_sub(8))
        .filter(|&p| u16_at(p) == 474 && u32_at(p + 4) == 85)
        .filter_map(|p| {
            let size = u32_at(p - 4) as usize;
            ((94..=104).contains(&size) && p + size <= file.len())
                .then(|| file[p..p + size].to_vec())
        })
        .collect();
    assert_eq!(found.len(), 1, "one ksw_hit record in silent.perf.data");
    found.into_iter().next().unwrap()
}

/// What perf printed for the record (silent.perf-script.txt), `key=value`.
fn perf_script_hit() -> (String, Vec<(String, String)>) {
    let text = read("silent.perf-script.txt");
    let line = text
        .lines()
        .find(|l| l.contains("kstackwatch:ksw_hit:"))
        .expect("ksw_hit line");
    let info = line.split("kstackwatch:ksw_hit: ").nth(1).unwrap().trim();
    let pairs = info
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (info.to_owned(), pairs)
}

fn hex(v: &str) -> u64 {
    u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn parses_ksw_hit_format() {
    let tep = hit_tep();
    let ev = tep.event("kstackwatch", "ksw_hit").unwrap();
    assert_eq!(ev.name(), "ksw_hit");
    assert_eq!(ev.id(), 474);
    assert_eq!(
        tep.event_by_id(474).map(|e| e.name()),
        Some("ksw_hit".into())
    );
    let fields: Vec<(String, usize, usize)> = ev
        .fields()
        .iter()
        .map(|f| (f.name(), f.offset(), f.size()))
        .collect();
    // The layout of ksw_hit.format, line by line.
    let expect = [
        ("common_type", 0, 2),
        ("common_flags", 2, 1),
        ("common_preempt_count", 3, 1),
        ("common_pid", 4, 4),
        ("id", 8, 8),
        ("addr", 16, 8),
        ("writer_ip", 24, 8),
        ("old_value", 32, 8),
        ("new_value", 40, 8),
        ("probe_ip", 48, 8),
        ("victim_pid", 56, 4),
        ("victim_comm", 60, 16),
        ("writer_comm", 76, 16),
        ("slot", 92, 1),
        ("len", 93, 1),
    ];
    let expect: Vec<(String, usize, usize)> = expect
        .iter()
        .map(|&(n, o, s)| (n.to_owned(), o, s))
        .collect();
    assert_eq!(fields, expect);
    let comm = ev.field("victim_comm").unwrap();
    assert!(comm.is_array() && !comm.is_dynamic());
    assert_eq!(comm.type_name(), "char[16]");
    assert!(ev.field("victim_pid").unwrap().is_signed());
    assert!(!ev.field("writer_ip").unwrap().is_signed());
    assert_eq!(ev.field("nope").unwrap_err(), Error::NoField("nope".into()));
}

#[test]
fn parses_all_three_formats() {
    let mut tep = Tep::new().unwrap();
    for (name, id) in [("ksw_arm", 473), ("ksw_hit", 474), ("ksw_disarm", 475)] {
        let ev = tep
            .parse_event("kstackwatch", &read(&format!("{name}.format")))
            .unwrap();
        assert_eq!((ev.name(), ev.id()), (name.to_owned(), id));
    }
    assert_eq!(tep.event_by_id(475).unwrap().name(), "ksw_disarm");
    assert!(tep.event_by_id(476).is_none());
    assert!(matches!(
        tep.event("kstackwatch", "ksw_other"),
        Err(Error::NoEvent(_))
    ));
}

#[test]
fn decodes_the_recorded_hit_like_perf() {
    let tep = hit_tep();
    let ev = tep.event("kstackwatch", "ksw_hit").unwrap();
    let data = hit_record();
    ev.check(&data).unwrap();
    let (_, perf) = perf_script_hit();
    let get = |k: &str| perf.iter().find(|(n, _)| n == k).unwrap().1.clone();

    assert_eq!(ev.read_number("common_type", &data).unwrap(), 474);
    assert_eq!(ev.read_signed("common_pid", &data).unwrap(), 85);
    assert_eq!(
        ev.read_number("id", &data).unwrap(),
        get("id").parse::<u64>().unwrap()
    );
    assert_eq!(
        ev.read_number("slot", &data).unwrap(),
        get("slot").parse::<u64>().unwrap()
    );
    assert_eq!(
        ev.read_number("len", &data).unwrap(),
        get("len").parse::<u64>().unwrap()
    );
    assert_eq!(ev.read_number("addr", &data).unwrap(), hex(&get("addr")));
    assert_eq!(
        ev.read_number("writer_ip", &data).unwrap(),
        hex(&get("writer"))
    );
    assert_eq!(
        ev.read_number("probe_ip", &data).unwrap(),
        hex(&get("probe"))
    );
    assert_eq!(
        ev.read_number("old_value", &data).unwrap(),
        hex(&get("old"))
    );
    assert_eq!(
        ev.read_number("new_value", &data).unwrap(),
        hex(&get("new"))
    );
    let (victim_comm, victim_pid) = get("victim")
        .split_once('/')
        .map(|(c, p)| (c.to_owned(), p.parse::<i64>().unwrap()))
        .unwrap();
    assert_eq!(ev.field_str("victim_comm", &data).unwrap(), victim_comm);
    assert_eq!(ev.read_signed("victim_pid", &data).unwrap(), victim_pid);
    assert_eq!(
        ev.field_str("writer_comm", &data).unwrap(),
        get("writer_comm")
    );
    assert_eq!(ev.field_bytes("writer_comm", &data).unwrap().len(), 16);

    // Spelled out, so the comparison above cannot pass vacuously.
    assert_eq!(
        ev.read_number("writer_ip", &data).unwrap(),
        0xffff_ffff_a001_9223
    );
    assert_eq!(ev.field_str("writer_comm", &data).unwrap(), "ksw-writer");
}

#[test]
fn prints_print_fmt_like_perf_and_resolves_registered_functions() {
    let data = hit_record();
    let (perf_line, _) = perf_script_hit();
    let plain = hit_tep()
        .event("kstackwatch", "ksw_hit")
        .unwrap()
        .print_info(&data)
        .unwrap();
    assert_eq!(plain, perf_line);

    let mut tep = hit_tep();

    // With the module's symbols (from the guest's kallsyms) %pS resolves.
    for line in read("kallsyms.txt").lines() {
        let mut w = line.split_whitespace();
        let (Some(addr), Some(_), Some(name)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        let module = w.next().map(|m| m.trim_matches(|c| c == '[' || c == ']'));
        tep.register_function(name, u64::from_str_radix(addr, 16).unwrap(), module)
            .unwrap();
    }
    assert_eq!(
        tep.find_function(0xffff_ffff_a001_9223),
        Some(("ksw_test_corrupt".to_owned(), 0xffff_ffff_a001_9220))
    );
    let named = tep
        .event("kstackwatch", "ksw_hit")
        .unwrap()
        .print_info(&data)
        .unwrap();
    assert!(
        named.contains("writer=ksw_test_corrupt+0x3 ")
            && named.contains("probe=ksw_test_victim+0xd7"),
        "{named}"
    );
    // The function map is built now; libtraceevent would not extend it.
    assert_eq!(
        tep.register_function("late", 0xffff_ffff_a100_0000, None),
        Err(Error::FunctionsFrozen)
    );
}

#[test]
fn rejects_records_it_cannot_hold() {
    let tep = hit_tep();
    let ev = tep.event("kstackwatch", "ksw_hit").unwrap();
    let data = hit_record();

    let short = &data[..60];
    assert_eq!(ev.read_number("id", short).unwrap(), 1);
    assert!(matches!(
        ev.read_number("victim_comm", short),
        Err(Error::OutOfBounds {
            end: 76,
            len: 60,
            ..
        })
    ));
    assert!(matches!(
        ev.field_bytes("writer_comm", short),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        ev.print_info(short),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        ev.read_number("id", &[]),
        Err(Error::OutOfBounds { .. })
    ));

    let mut other = data.clone();
    other[0] = 0xd9; // common_type 473: a ksw_arm record
    assert_eq!(
        ev.print_info(&other),
        Err(Error::WrongEvent {
            expected: 474,
            found: 473
        })
    );
}

#[test]
fn reports_parse_errors() {
    let mut tep = Tep::new().unwrap();
    assert_eq!(
        tep.parse_event("kstackwatch", "ID: 1\n").unwrap_err(),
        Error::NoName
    );
    match tep.parse_event("kstackwatch", "name: ksw_hit\n") {
        Err(Error::Parse { code, message }) => {
            assert!(code < 0, "{code}");
            assert_eq!(message, "failed to read event id");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    // libtraceevent keeps a half-parsed event and says so only in a flag.
    let broken = read("ksw_hit.format").replace("field:u64 id;", "field:u64 id");
    assert_eq!(
        tep.parse_event("kstackwatch", &broken).unwrap_err(),
        Error::Incomplete("kstackwatch:ksw_hit".into())
    );
    assert!(tep.event("kstackwatch", "ksw_hit").unwrap().is_failed());
    assert!(matches!(
        tep.parse_event("kst\0ackwatch", &read("ksw_hit.format")),
        Err(Error::Nul(_))
    ));
}

#[test]
fn byte_order_and_long_size() {
    let mut tep = Tep::new().unwrap();
    assert_eq!(tep.long_size(), 8);
    assert!(!tep.file_big_endian());
    tep.parse_event("kstackwatch", &read("ksw_hit.format"))
        .unwrap();
    tep.set_file_big_endian(true);
    assert!(tep.file_big_endian());
    let data = hit_record();
    let ev = tep.event("kstackwatch", "ksw_hit").unwrap();
    // The same bytes read as big-endian.
    assert_eq!(
        ev.read_number("writer_ip", &data).unwrap(),
        0xffff_ffff_a001_9223_u64.swap_bytes()
    );
    tep.set_long_size(4);
    assert_eq!(tep.long_size(), 4);
}
