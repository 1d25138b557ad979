//! One dead TCP phone does not stall a shard: the daemon runs on a single
//! signalling shard, one agent's static contact is a TCP listener that
//! never accepts (backlog 0, queue pre-filled: its SYNs go unanswered, on
//! loopback too), and while the connect to it is pending every call to the
//! live agent is answered. The pending connect later times out and what
//! was queued for it is dropped, counted and logged once.

mod common;

use common::phone::{AgentPhone, Caller};
use common::{wait_until, ConfigSpec, Daemon};
use std::net::SocketAddr;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);
/// Long against the calls below (they take well under a second each on an
/// idle machine), short enough for the test to see the connect fail.
const CONNECT_TIMEOUT_S: u64 = 15;

fn metrics(d: &Daemon) -> String {
    let url = format!("{}/metrics", d.admin_url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(&url).await.unwrap().text().await.unwrap() })
}

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// A listener that never accepts and whose accept queue is full.
fn blackhole() -> (socket2::Socket, SocketAddr, Vec<std::net::TcpStream>) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    s.listen(0).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    let mut fill = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(c) => fill.push(c),
            Err(_) => break,
        }
    }
    assert!(
        !fill.is_empty(),
        "the accept queue took no connection at all"
    );
    // The queue is full now: one more connect must not complete.
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err(),
        "a connect to the full listener completed: it would not stall anything"
    );
    (s, addr, fill)
}

#[test]
fn calls_are_answered_while_a_tcp_agent_never_accepts() {
    let (_hole, hole, _fill) = blackhole();
    let mut live = AgentPhone::new("2002");
    let mut spec = ConfigSpec::new();
    spec.env = vec![("TOKIO_WORKER_THREADS".into(), "1".into())];
    spec.server_extra = format!("tcp_connect_timeout_s = {CONNECT_TIMEOUT_S}\n");
    spec.extra = format!(
        "\n[agents.2001]\ncontact = \"sip:2001@{hole};transport=tcp\"\nskills = {{ dead = 5 }}\n\
         {}\n[queues.qdead]\nskills = {{ dead = 1 }}\n\n[queues.qlive]\nskills = {{ live = 1 }}\nwrapup_s = 0\n\n\
         [[numbers]]\nnumber = \"1901\"\nto = \"queue:qdead\"\n\n\
         [[numbers]]\nnumber = \"1902\"\nto = \"queue:qlive\"\n",
        live.toml("skills = { live = 5 }"),
    );
    // Starting is the first proof: the qualify ping to the dead agent is
    // the primary shard's first send, and the daemon must still answer.
    let d = Daemon::start_with(spec);
    assert!(
        d.wait_for_log(T, |l| l.contains("shards=1")),
        "{}",
        d.stderr()
    );
    let port = d.sip_port();
    wait_until("the connect to the dead agent to be under way", T, || {
        sample(&metrics(&d), "sipacd_sip_tcp_connecting") == 1.0
    });
    // A caller for the dead agent's queue waits; callers for the live one
    // are answered by it, one after the other, on the same shard.
    let _waiting = Caller::dial(port, "1901");
    for n in 0..3 {
        let mut c = Caller::dial(port, "1902");
        let inv = live
            .expect_invite(T)
            .unwrap_or_else(|| panic!("call {n}: the live agent was not offered it"));
        live.answer(&inv);
        c.bye();
        assert!(
            live.expect_bye(T).is_some(),
            "call {n}: no BYE to the agent"
        );
        let m = metrics(&d);
        assert_eq!(
            sample(&m, "sipacd_sip_tcp_connecting"),
            1.0,
            "call {n} completed while the connect is still pending"
        );
        assert_eq!(sample(&m, "sipacd_sip_tcp_connect_failures_total"), 0.0);
    }
    // The connect times out: what waited for it is dropped and counted.
    let deadline = Duration::from_secs(CONNECT_TIMEOUT_S + 20);
    wait_until("the connect to time out", deadline, || {
        sample(&metrics(&d), "sipacd_sip_tcp_connect_failures_total") >= 1.0
    });
    let m = metrics(&d);
    assert!(sample(&m, "sipacd_sip_tcp_dropped_total") >= 1.0, "{m}");
    assert!(
        d.wait_for_log(T, |l| l.contains("tcp connect failed")
            && l.contains("dropped=")),
        "{}",
        d.stderr()
    );
}
