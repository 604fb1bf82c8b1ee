//! Offline by design. brainrecon downloads nothing: no command holds an HTTP client, models
//! are read from paths and the Hugging Face cache (`HF_HOME`, `HF_HUB_CACHE`), and a missing one
//! is an error naming the `huggingface-cli download` to run elsewhere. The one thing that can
//! reach another machine is a socket of `brainrecon stream` (`--source tcp://HOST:PORT`, the
//! page it serves on `--serve`); with [`OFFLINE_VAR`] set (`BRAINRECON_OFFLINE=1`, or the
//! binary's `--offline`), [`check_network`] refuses those, by name, unless the address is this
//! machine's loopback.

use crate::error::{DataError, Result};

/// The environment variable that turns the offline setting on: `1`, `true` or `yes`.
pub const OFFLINE_VAR: &str = "BRAINRECON_OFFLINE";

/// Whether the offline setting is on ([`OFFLINE_VAR`] is `1`, `true` or `yes`, any case).
pub fn is_offline() -> bool {
    std::env::var(OFFLINE_VAR)
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// Whether `address` (`HOST:PORT`, `[V6]:PORT` or a bare host) names this machine's loopback:
/// `localhost`, 127.0.0.0/8 or ::1. Read from the text alone: no name is resolved.
pub fn is_loopback(address: &str) -> bool {
    // a bare IPv6 address (`::1`) is no HOST:PORT
    if let Ok(ip) = address.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let host = match address.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !host.is_empty() => host,
        _ => address,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses `what` (the flag and value that would open the socket, e.g. `--source
/// tcp://10.0.0.2:9000`) when the offline setting is on and `address` is not loopback: a usage
/// error (exit status 2) naming it.
pub fn check_network(what: &str, address: &str) -> Result<()> {
    if is_offline() && !is_loopback(address) {
        return Err(DataError::Usage(format!(
            "{what}: {address} is reached over the network, and the offline setting is on \
             ({OFFLINE_VAR}=1 or --offline): use a loopback address (127.0.0.1), or run without it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_read_from_the_text() {
        for address in [
            "127.0.0.1:8080",
            "localhost:9000",
            "[::1]:80",
            "127.1.2.3",
            "::1",
        ] {
            assert!(is_loopback(address), "{address}");
        }
        for address in ["0.0.0.0:8080", "10.0.0.2:9000", "example.org:80", "[::]:80"] {
            assert!(!is_loopback(address), "{address}");
        }
    }
}
