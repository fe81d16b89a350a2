//! The gateway's counters and histograms, written in Prometheus' text format.
//!
//! A handful of series do not justify a metrics framework: each is a map behind a
//! mutex, updated once per request or per task, and rendered on `GET /metrics`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, n) in LATENCY_BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in LATENCY_BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    http: BTreeMap<(String, String, u16), u64>,
    relayed: BTreeMap<(String, &'static str), u64>,
    rate_limited: BTreeMap<&'static str, u64>,
    delivery: Histogram,
    inference: BTreeMap<String, Histogram>,
    sse_streams: i64,
}

/// The gateway's metrics.
#[derive(Debug, Default)]
pub struct Metrics(Mutex<Inner>);

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One answered HTTP request; `route` is the matched route pattern, never the raw
    /// path, so the number of series stays bounded.
    pub fn http_request(&self, route: &str, method: &str, code: u16) {
        *self
            .lock()
            .http
            .entry((route.to_owned(), method.to_owned(), code))
            .or_default() += 1;
    }

    /// One envelope relayed to the ledger, accepted or with the kind that refused it.
    pub fn relayed(&self, action: &str, result: &'static str) {
        *self
            .lock()
            .relayed
            .entry((action.to_owned(), result))
            .or_default() += 1;
    }

    pub fn rate_limited(&self, scope: &'static str) {
        *self.lock().rate_limited.entry(scope).or_default() += 1;
    }

    /// Time from a submit this gateway relayed to the gateway seeing it delivered.
    pub fn delivery(&self, elapsed: Duration) {
        self.lock().delivery.observe(elapsed.as_secs_f64());
    }

    /// Inference time reported by the in-process node.
    pub fn inference(&self, model: &str, elapsed: Duration) {
        self.lock()
            .inference
            .entry(model.to_owned())
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    pub fn sse_opened(&self) {
        self.lock().sse_streams += 1;
    }

    pub fn sse_closed(&self) {
        self.lock().sse_streams -= 1;
    }

    pub fn sse_streams(&self) -> i64 {
        self.lock().sse_streams
    }

    /// The Prometheus text exposition, with `tasks` (status → count) read from the
    /// ledger by the caller.
    pub fn render(&self, tasks: &[(&str, u64)]) -> String {
        let m = self.lock();
        let mut out = String::new();
        out.push_str(
            "# HELP flownet_tasks Tasks on the ledger by status.\n# TYPE flownet_tasks gauge\n",
        );
        for (status, n) in tasks {
            let _ = writeln!(out, "flownet_tasks{{status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP flownet_http_requests_total HTTP requests answered, by route, method and status code.\n# TYPE flownet_http_requests_total counter\n");
        for ((route, method, code), n) in &m.http {
            let _ = writeln!(
                out,
                "flownet_http_requests_total{{route=\"{}\",method=\"{method}\",code=\"{code}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP flownet_relayed_envelopes_total Signed envelopes relayed to the ledger, by action and result.\n# TYPE flownet_relayed_envelopes_total counter\n");
        for ((action, result), n) in &m.relayed {
            let _ = writeln!(
                out,
                "flownet_relayed_envelopes_total{{action=\"{}\",result=\"{result}\"}} {n}",
                escape(action)
            );
        }
        out.push_str("# HELP flownet_rate_limited_total Requests refused by a rate limit, by scope.\n# TYPE flownet_rate_limited_total counter\n");
        for (scope, n) in &m.rate_limited {
            let _ = writeln!(out, "flownet_rate_limited_total{{scope=\"{scope}\"}} {n}");
        }
        out.push_str("# HELP flownet_submit_to_delivery_seconds From relaying a submit to seeing its task delivered.\n# TYPE flownet_submit_to_delivery_seconds histogram\n");
        m.delivery
            .render(&mut out, "flownet_submit_to_delivery_seconds", "");
        out.push_str("# HELP flownet_inference_seconds Inference time of the in-process node, by model.\n# TYPE flownet_inference_seconds histogram\n");
        for (model, h) in &m.inference {
            h.render(
                &mut out,
                "flownet_inference_seconds",
                &format!("model=\"{}\"", escape(model)),
            );
        }
        out.push_str("# HELP flownet_sse_streams Open server-sent event streams.\n# TYPE flownet_sse_streams gauge\n");
        let _ = writeln!(out, "flownet_sse_streams {}", m.sse_streams);
        out
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let m = Metrics::default();
        m.delivery(Duration::from_millis(30));
        m.delivery(Duration::from_secs(3));
        m.http_request("/api/tasks/{id}", "GET", 200);
        m.inference("a\"b", Duration::from_millis(120));
        let text = m.render(&[("open", 2)]);
        assert!(text.contains("flownet_submit_to_delivery_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("flownet_submit_to_delivery_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("flownet_submit_to_delivery_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("flownet_submit_to_delivery_seconds_count 2\n"));
        assert!(text.contains(
            "flownet_http_requests_total{route=\"/api/tasks/{id}\",method=\"GET\",code=\"200\"} 1\n"
        ));
        assert!(text.contains("flownet_inference_seconds_count{model=\"a\\\"b\"} 1\n"));
        assert!(text.contains("flownet_tasks{status=\"open\"} 2\n"));
    }
}
