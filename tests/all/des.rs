//! The event queue against a simple model, over many random operations.

use proptest::prelude::*;
use servesim::des::EventQueue;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Op {
    Push(u64),
    Pop,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    // Few distinct times, so ties are frequent; some at the clock's end, where saturated
    // times land.
    let end = prop_oneof![Just(u64::MAX), Just(u64::MAX - 1)];
    let op = prop_oneof![3 => (0u64..50).prop_map(Op::Push), 1 => end.prop_map(Op::Push), 2 => Just(Op::Pop)];
    prop::collection::vec(op, 0..2_000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The queue behaves exactly like a BTreeMap keyed by (time, insertion number).
    #[test]
    fn queue_matches_btreemap_model(ops in ops()) {
        let mut q = EventQueue::new();
        let mut model = BTreeMap::new();
        for (id, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push(t) => {
                    q.push(t, id);
                    model.insert((t, id), id);
                }
                Op::Pop => {
                    let want = model.pop_first().map(|((t, _), id)| (t, id));
                    prop_assert_eq!(q.pop(), want);
                }
            }
            prop_assert_eq!(q.len(), model.len());
            prop_assert_eq!(q.peek_time(), model.keys().next().map(|k| k.0));
        }
        while let Some(got) = q.pop() {
            let want = model.pop_first().map(|((t, _), id)| (t, id));
            prop_assert_eq!(Some(got), want);
        }
        prop_assert!(model.is_empty());
    }
}
