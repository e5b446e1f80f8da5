//! Clients of several bosun servers (replicas on one PostgreSQL): `--server` and
//! `BOSUN_SERVER` take a comma-separated list. A caller stays on the server that last
//! answered and moves to the next one when a server cannot serve the call.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use connectrpc::{ConnectError, ErrorCode};

use crate::agent_client::{BadServerUrl, server_uri};

/// Parses `--server`: one URL or several separated by commas (`http://a:50051,http://b:50051`).
pub fn server_uris(list: &str) -> Result<Vec<http::Uri>, BadServerUrl> {
    list.split(',').map(str::trim).map(server_uri).collect()
}

/// When a failed call is tried on the next server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failover {
    /// The agent's calls: every one may be repeated (heartbeats, reports and acks are taken
    /// at least once), so any failure of the server or the path to it moves on: no
    /// connection, a connection lost mid-call, no answer in time, or `unavailable`.
    Repeatable,
    /// An operator's calls, some of which are not safe to repeat (issuing a command): only a
    /// connection that could not be made moves on, as then the request never left. Any
    /// answer, `unavailable` included, is the caller's to read: a server whose store lost
    /// its connection during a commit answers `unavailable` although the write may have
    /// landed, and a command issued again on the next server would be issued twice.
    Unsent,
}

impl Failover {
    fn moves_on(self, error: &ConnectError) -> bool {
        let transport = std::error::Error::source(error).is_some();
        match self {
            Failover::Repeatable => {
                transport || matches!(error.code, ErrorCode::Unavailable | ErrorCode::DeadlineExceeded)
            }
            Failover::Unsent => transport && never_connected(error),
        }
    }
}

/// Whether a transport failure happened before a connection existed (refused, no route,
/// DNS, connect timeout), so the request never reached a server.
fn never_connected(error: &ConnectError) -> bool {
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        if let Some(client) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
            return client.is_connect();
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(io.kind(), ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable);
        }
        cause = error.source();
    }
    false
}

/// One client per server, and which one is in use.
#[derive(Debug)]
pub struct Servers<C> {
    servers: Vec<(String, C)>,
    current: AtomicUsize,
    failover: Failover,
}

impl<C> Servers<C> {
    /// `servers` must not be empty.
    pub fn new(servers: Vec<(String, C)>, failover: Failover) -> Self {
        assert!(!servers.is_empty(), "a client needs at least one server");
        Self { servers, current: AtomicUsize::new(0), failover }
    }

    /// The servers' URLs, comma-separated, as given.
    pub fn describe(&self) -> String {
        self.servers.iter().map(|(url, _)| url.as_str()).collect::<Vec<_>>().join(",")
    }

    /// The URL of the server in use.
    pub fn current_url(&self) -> &str {
        &self.servers[self.current.load(Ordering::Relaxed)].0
    }

    /// Runs `call` on the server in use; when that server cannot serve it (see
    /// [`Failover`]), on the next ones in turn. The first server that answers becomes the
    /// one in use. When none can, the last failure is returned.
    pub async fn call<'a, T, F, Fut>(&'a self, call: F) -> Result<T, ConnectError>
    where
        F: Fn(&'a C) -> Fut,
        Fut: Future<Output = Result<T, ConnectError>> + 'a,
    {
        let count = self.servers.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut step = 0;
        loop {
            let index = (start + step) % count;
            let (url, client) = &self.servers[index];
            let answered = call(client).await;
            step += 1;
            match answered {
                Err(error) if step < count && self.failover.moves_on(&error) => {
                    let next = &self.servers[(index + 1) % count].0;
                    // Info: an agent (logging at info) says so; a CLI command (at warn)
                    // stays one line.
                    tracing::info!(server = %url, %next, %error, "server cannot serve the call; trying the next one");
                }
                answered => {
                    // A server that answered (even "no such node") is working: stay on it.
                    let served = answered.as_ref().err().is_none_or(|e| !self.failover.moves_on(e));
                    if index != start && served {
                        self.current.store(index, Ordering::Relaxed);
                        tracing::info!(server = %url, "now using this server");
                    }
                    return answered;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn lists_are_split_on_commas_and_each_url_checked() {
        let uris = server_uris("http://a:1, https://b:2").expect("two servers");
        assert_eq!(uris.iter().map(ToString::to_string).collect::<Vec<_>>(), ["http://a:1/", "https://b:2/"]);
        let error = server_uris("http://a:1,b:2").unwrap_err().to_string();
        assert!(error.contains("\"b:2\"") && error.contains("http://"), "{error}");
        assert!(server_uris("http://a:1,").is_err(), "an empty entry is an error");
    }

    /// A fake server: answers `Ok(name)` or the error it was given.
    struct Fake {
        name: &'static str,
        answer: Mutex<Option<ConnectError>>,
    }

    fn fake(name: &'static str, answer: Option<ConnectError>) -> (String, Fake) {
        (name.to_owned(), Fake { name, answer: Mutex::new(answer) })
    }

    async fn ask(servers: &Servers<Fake>) -> Result<&'static str, ErrorCode> {
        servers
            .call(|fake| async move {
                match fake.answer.lock().unwrap().clone() {
                    None => Ok(fake.name),
                    Some(error) => Err(error),
                }
            })
            .await
            .map_err(|e| e.code)
    }

    fn refused() -> ConnectError {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        ConnectError::unavailable_from_transport("HTTP request failed", io)
    }

    fn reset() -> ConnectError {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset");
        ConnectError::unavailable_from_transport("HTTP request failed", io)
    }

    #[tokio::test]
    async fn the_caller_stays_on_the_server_that_answered() {
        let servers =
            Servers::new(vec![fake("a", Some(refused())), fake("b", None), fake("c", None)], Failover::Repeatable);
        assert_eq!(ask(&servers).await, Ok("b"), "a refuses connections: b answers");
        assert_eq!(servers.current_url(), "b");
        *servers.servers[0].1.answer.lock().unwrap() = None;
        assert_eq!(ask(&servers).await, Ok("b"), "b stays in use although a is back");
        *servers.servers[1].1.answer.lock().unwrap() = Some(ConnectError::unavailable("store unavailable: x"));
        assert_eq!(ask(&servers).await, Ok("c"), "an unavailable answer moves a repeatable call on");
        assert_eq!(servers.current_url(), "c");
    }

    #[tokio::test]
    async fn an_operator_call_moves_on_only_when_it_never_left() {
        let servers = Servers::new(vec![fake("a", Some(refused())), fake("b", None)], Failover::Unsent);
        assert_eq!(ask(&servers).await, Ok("b"), "a refused the connection: nothing was sent");
        // A store that lost its connection during a commit answers unavailable although
        // the write may have landed: that answer is the caller's, never retried elsewhere.
        let servers = Servers::new(
            vec![fake("a", Some(ConnectError::unavailable("store unavailable: x"))), fake("b", None)],
            Failover::Unsent,
        );
        assert_eq!(ask(&servers).await, Err(ErrorCode::Unavailable));
        assert_eq!(servers.current_url(), "a");
    }

    #[tokio::test]
    async fn answers_that_are_the_callers_problem_do_not_move_on() {
        let servers = Servers::new(
            vec![fake("a", Some(ConnectError::not_found("no node n1"))), fake("b", None)],
            Failover::Repeatable,
        );
        assert_eq!(ask(&servers).await, Err(ErrorCode::NotFound));
        assert_eq!(servers.current_url(), "a");
    }

    #[tokio::test]
    async fn only_repeatable_calls_move_on_after_the_request_may_have_arrived() {
        for (failover, expected) in [(Failover::Repeatable, Ok("b")), (Failover::Unsent, Err(ErrorCode::Unavailable))] {
            let servers = Servers::new(vec![fake("a", Some(reset())), fake("b", None)], failover);
            assert_eq!(ask(&servers).await, expected, "{failover:?} after a reset connection");
            let late = ConnectError::deadline_exceeded("late");
            let servers = Servers::new(vec![fake("a", Some(late)), fake("b", None)], failover);
            let expected = if failover == Failover::Repeatable { Ok("b") } else { Err(ErrorCode::DeadlineExceeded) };
            assert_eq!(ask(&servers).await, expected, "{failover:?} after a deadline");
        }
    }

    #[tokio::test]
    async fn when_no_server_answers_the_last_failure_is_reported() {
        let servers = Servers::new(
            vec![fake("a", Some(ConnectError::unavailable("store unavailable"))), fake("b", Some(refused()))],
            Failover::Repeatable,
        );
        let failure = servers.call(|fake| async move { Err::<(), _>(fake.answer.lock().unwrap().clone().unwrap()) });
        let error = failure.await.unwrap_err();
        assert!(std::error::Error::source(&error).is_some(), "b's refused connection is the last failure");
        assert_eq!(servers.current_url(), "a", "no server answered: the one in use stays");
    }
}
