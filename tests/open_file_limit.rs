//! The server raises its soft open-file limit to the hard limit at start-up. In a test
//! process of its own: lowering the limit for the test must not starve tests running beside
//! it of descriptors.

use rtmp_server::server::raise_open_file_limit;
use rustix::process::{Resource, getrlimit, setrlimit};

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
    let mut limit = getrlimit(Resource::Nofile);
    let Some(hard) = limit.maximum else {
        // No hard limit: the soft limit is left as it is.
        let (before, after) = raise_open_file_limit().unwrap();
        assert_eq!(before, after);
        return;
    };
    let low = hard.min(256);
    limit.current = Some(low);
    setrlimit(Resource::Nofile, limit).expect("lowering the soft limit is allowed");
    assert_eq!(raise_open_file_limit().unwrap(), (low, hard));
    assert_eq!(getrlimit(Resource::Nofile).current, Some(hard));
    // Raised already: left as it is.
    assert_eq!(raise_open_file_limit().unwrap(), (hard, hard));
}
