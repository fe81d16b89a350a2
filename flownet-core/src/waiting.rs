//! What every waiter on a task does (the CLI's `--wait`, Python's `Task.wait`, the
//! gateway): look at the task, say how long its current deadline has left, and once
//! that deadline has passed expire the task itself (anyone may), so the escrow comes
//! back without anyone running `task expire`.

use crate::{Ledger, Result, Task, TaskId, TaskStatus, Timestamp, Wallet};

/// The deadline a task is waiting on now: the claim deadline while it is open, the
/// fulfil deadline once claimed, none once final.
pub fn current_deadline(task: &Task) -> Option<Timestamp> {
    match task.status {
        TaskStatus::Open => Some(task.claim_deadline),
        TaskStatus::Claimed => task.fulfil_deadline,
        _ => None,
    }
}

/// One look at a task being waited on.
#[derive(Debug, Clone)]
pub enum Look {
    /// The task is final (fulfilled, or refunded: cancelled, declined, expired).
    Final(Box<Task>),
    /// Still open or claimed, with the seconds its current deadline has left by the
    /// ledger's clock.
    Pending { task: Box<Task>, secs_left: u64 },
}

/// Reads task `id`; when its current deadline has passed and `wallet` is given,
/// expires it first (losing a race to another expiry, or to the node, is fine) and
/// reads it again.
pub async fn look<W: Ledger + ?Sized>(
    ledger: &dyn Ledger,
    wallet: Option<&Wallet<W>>,
    id: TaskId,
) -> Result<Look> {
    let task = read(ledger, id).await?;
    let Some(deadline) = current_deadline(&task) else {
        return Ok(Look::Final(Box::new(task)));
    };
    let now = ledger.info().await?.now;
    if now <= deadline {
        return Ok(Look::Pending {
            task: Box::new(task),
            secs_left: deadline - now,
        });
    }
    if let Some(wallet) = wallet {
        match wallet.expire(id).await {
            Ok(_) => {}
            Err(e) if e.is_rejection() => {}
            Err(e) => return Err(e),
        }
        let task = read(ledger, id).await?;
        if task.status.is_final() {
            return Ok(Look::Final(Box::new(task)));
        }
        return Ok(Look::Pending {
            task: Box::new(task),
            secs_left: 0,
        });
    }
    Ok(Look::Pending {
        task: Box::new(task),
        secs_left: 0,
    })
}

async fn read(ledger: &dyn Ledger, id: TaskId) -> Result<Task> {
    ledger
        .task(id)
        .await?
        .ok_or_else(|| crate::Error::NotFound(format!("task {id}")))
}

/// What a task that ended without an output means for its requester, in one sentence.
pub fn ended_without_output(task: &Task) -> String {
    let back = format!(
        "its escrow of {} FLOWNET came back to the requester",
        task.refunded
    );
    match task.status {
        TaskStatus::Declined => format!(
            "task {} was declined by its node ({}): {back}",
            task.id,
            task.declined_reason.as_deref().unwrap_or("no reason given")
        ),
        TaskStatus::Expired if task.claimed_at.is_none() => format!(
            "task {} expired: its node never claimed it, and {back}",
            task.id
        ),
        TaskStatus::Expired => format!(
            "task {} expired: its node claimed it but did not deliver in time, and {back}",
            task.id
        ),
        TaskStatus::Cancelled => format!("task {} was cancelled: {back}", task.id),
        status => format!("task {} is {status}: it has no output yet", task.id),
    }
}
