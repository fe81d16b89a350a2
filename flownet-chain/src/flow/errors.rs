//! Cadence rejections back to the core's typed errors.
//!
//! Every rejection of the FlowNet contracts is a pre-condition (or, for a few
//! transaction-level checks, a panic) whose message is exactly the `Display`
//! of a [`flownet_core::Error`]. Flow reports it inside a longer execution
//! error; [`from_execution_error`] finds the message and parses it back.

use flownet_core::{Address, Amount, Error, TaskStatus};

/// The actions `Error::InvalidState` names.
const ACTIONS: [&str; 7] = [
    "cancel", "claim", "fulfil", "expire", "decline", "rate", "sweep",
];

/// The rule's message inside a Flow execution error, if there is one.
pub fn rule_message(error_message: &str) -> Option<&str> {
    for marker in ["pre-condition failed: ", "panic: "] {
        if let Some(at) = error_message.find(marker) {
            let rest = &error_message[at + marker.len()..];
            let end = rest.find('\n').unwrap_or(rest.len());
            return Some(rest[..end].trim_end());
        }
    }
    None
}

/// The core error a failed Flow transaction stands for.
pub fn from_execution_error(error_message: &str) -> Error {
    match rule_message(error_message) {
        Some(m) => parse(m).unwrap_or_else(|| Error::InvalidInput(m.to_owned())),
        None => Error::InvalidInput(format!(
            "the Flow transaction failed: {}",
            first_lines(error_message)
        )),
    }
}

fn first_lines(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(6)
        .collect::<Vec<_>>()
        .join(" ")
}

fn between<'a>(s: &'a str, prefix: &str, middle: &str) -> Option<(&'a str, &'a str)> {
    s.strip_prefix(prefix)?.split_once(middle)
}

/// Parses a core error's `Display` text back into the error.
pub fn parse(m: &str) -> Option<Error> {
    let amount = |s: &str| s.parse::<Amount>().ok();
    let address = |s: &str| s.parse::<Address>().ok();
    if let Some(rest) = m.strip_prefix("insufficient funds: ") {
        let (needed, rest) = rest.split_once(" FLOWNET needed, ")?;
        let available = rest.strip_suffix(" FLOWNET available")?;
        return Some(Error::InsufficientFunds {
            needed: amount(needed)?,
            available: amount(available)?,
        });
    }
    if let Some((price, rest)) =
        between(m, "the node's price ", " FLOWNET is above your max price ")
    {
        return Some(Error::PriceAboveMax {
            price: amount(price)?,
            max_price: amount(rest.strip_suffix(" FLOWNET")?)?,
        });
    }
    if let Some((task, node)) = between(m, "wrong node: task ", " is addressed to node ") {
        return Some(Error::WrongNode {
            task: task.parse().ok()?,
            node: address(node)?,
        });
    }
    if let Some((rater, task)) = between(m, "already rated: ", " has already rated task ") {
        return Some(Error::AlreadyRated {
            task: task.parse().ok()?,
            rater: address(rater)?,
        });
    }
    if let Some((size, max)) = between(m, "prompt too large: ", " bytes, at most ") {
        return Some(Error::PromptTooLarge {
            size: size.parse().ok()?,
            max: max.strip_suffix(" allowed")?.parse().ok()?,
        });
    }
    if let Some((size, max)) = between(m, "params too large: ", " bytes, at most ") {
        return Some(Error::ParamsTooLarge {
            size: size.parse().ok()?,
            max: max.strip_suffix(" allowed")?.parse().ok()?,
        });
    }
    type Make = fn(String) -> Error;
    let prefixed: [(&str, Make); 8] = [
        ("not allowed: ", Error::Unauthorized),
        ("deadline not passed: ", Error::DeadlineNotPassed),
        ("deadline passed: ", Error::DeadlinePassed),
        ("already exists: ", Error::AlreadyExists),
        ("faucet: ", Error::Faucet),
        ("not found: ", Error::NotFound),
        ("invalid input: ", Error::InvalidInput),
        ("storage: ", Error::Storage),
    ];
    for (prefix, make) in prefixed {
        if let Some(rest) = m.strip_prefix(prefix) {
            return Some(make(rest.to_owned()));
        }
    }
    if m == "amount overflow" {
        return Some(Error::Overflow);
    }
    if let Some((task, rest)) = between(m, "task ", " is ") {
        let (status, action) = rest.split_once(": cannot ")?;
        return Some(Error::InvalidState {
            task: task.parse().ok()?,
            status: status.parse::<TaskStatus>().ok()?,
            action: ACTIONS.into_iter().find(|a| *a == action)?,
        });
    }
    if let Some(rest) = m.strip_prefix("node ") {
        if let Some(node) = rest.strip_suffix(" is not active") {
            return Some(Error::NodeInactive(address(node)?));
        }
        let (node, model) = rest.split_once(" does not offer model ")?;
        return Some(Error::ModelNotOffered {
            node: address(node)?,
            model: model.to_owned(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use flownet_core::Address;

    use super::*;

    /// Every rule error survives Display → parse unchanged: the Cadence side
    /// only has to produce the same text.
    #[test]
    fn every_rule_error_parses_back_from_its_text() {
        let a = Address([0, 1, 2, 3, 4, 5, 6, 7]);
        let errors = [
            Error::InsufficientFunds {
                needed: Amount(150_000_000),
                available: Amount(1),
            },
            Error::PriceAboveMax {
                price: Amount::tokens(3),
                max_price: Amount(250_000_000),
            },
            Error::WrongNode { task: 7, node: a },
            Error::Unauthorized("only the requester can cancel task 3".into()),
            Error::DeadlinePassed("task 3 had to be claimed by 1700000300".into()),
            Error::DeadlineNotPassed("task 3 is open until 1700000300".into()),
            Error::AlreadyRated { task: 9, rater: a },
            Error::AlreadyExists("node 0x0001020304050607".into()),
            Error::Faucet("this ledger has no faucet".into()),
            Error::PromptTooLarge {
                size: 5000,
                max: 4096,
            },
            Error::ParamsTooLarge {
                size: 5000,
                max: 4096,
            },
            Error::NotFound("task 12".into()),
            Error::InvalidState {
                task: 4,
                status: TaskStatus::Fulfilled,
                action: "cancel",
            },
            Error::NodeInactive(a),
            Error::ModelNotOffered {
                node: a,
                model: "sd-turbo".into(),
            },
            Error::InvalidInput("params must be a JSON object".into()),
            Error::Overflow,
        ];
        for e in errors {
            assert_eq!(parse(&e.to_string()), Some(e.clone()), "{e}");
        }
    }

    #[test]
    fn finds_the_rule_inside_a_flow_execution_error() {
        let flow = "[Error Code: 1101] error caused by: 1 error occurred:\n\t* transaction execute failed: \
            [Error Code: 1101] cadence runtime error: Execution failed:\nerror: pre-condition failed: \
            node 0x0001020304050607 is not active\n   --> f8d6e0586b0a20c7.FlowNetMarketplace:455:12\n";
        assert_eq!(
            from_execution_error(flow),
            Error::NodeInactive(Address([0, 1, 2, 3, 4, 5, 6, 7]))
        );
        let other = from_execution_error("[Error Code: 1110] computation exceeds limit (9999)");
        assert!(
            matches!(&other, Error::InvalidInput(m) if m.contains("computation exceeds limit")),
            "{other:?}"
        );
    }
}
