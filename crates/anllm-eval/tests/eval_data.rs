//! The fetched benchmark files (scripts/fetch-eval.sh): every task loads from its Arrow or JSONL
//! file with the expected number of scored items and demonstrations. Fails (does not skip) when
//! the files are missing.

use anllm_eval::load::{POOL_ROWS, TaskFiles, load_task};
use anllm_eval::tasks::Task;

#[test]
fn all_eight_tasks_load_with_the_expected_sizes() {
    let dir = anllm::testutil::anllm_home().join("eval");
    assert!(
        dir.exists(),
        "missing {}: run scripts/fetch-assets.sh",
        dir.display()
    );
    let expected = [
        (Task::Obqa, 500, 500),
        (Task::Piqa, 1838 - POOL_ROWS, POOL_ROWS),
        (Task::Boolq, 3270 - POOL_ROWS, POOL_ROWS),
        (Task::Hellaswag, 10042 - POOL_ROWS, POOL_ROWS),
        (Task::Winogrande, 1267 - POOL_ROWS, POOL_ROWS),
        (Task::ArcEasy, 2376, 570),
        (Task::ArcChallenge, 1172, 299),
        (Task::Sciq, 1000 - POOL_ROWS, POOL_ROWS),
    ];
    for (task, scored, pool) in expected {
        let data = load_task(task, &TaskFiles::standard(&dir, task), 5, 1234).unwrap();
        assert_eq!(
            (data.docs.len(), data.shots.pool.len()),
            (scored, pool),
            "{task}"
        );
        for doc in &data.docs {
            assert!(doc.gold < doc.choices.len(), "{task}");
        }
    }
}

#[test]
fn first_items_format_as_the_harness_did() {
    let dir = anllm::testutil::anllm_home().join("eval");
    let arc = load_task(
        Task::ArcEasy,
        &TaskFiles::standard(&dir, Task::ArcEasy),
        0,
        0,
    )
    .unwrap();
    let doc = &arc.docs[0];
    assert_eq!(
        doc.text,
        "Question: Which statement best explains why photosynthesis is the foundation of most \
         food webs?\nAnswer:"
    );
    assert_eq!(
        doc.choices[0].continuation,
        " Sunlight is the source of energy for nearly all ecosystems."
    );
    assert_eq!(doc.gold, 0);
    let piqa = load_task(Task::Piqa, &TaskFiles::standard(&dir, Task::Piqa), 0, 0).unwrap();
    assert!(
        piqa.docs[0].text.starts_with("Question: ") && piqa.docs[0].text.ends_with("\nAnswer:")
    );
    assert_eq!(piqa.docs[0].choices.len(), 2);
}
