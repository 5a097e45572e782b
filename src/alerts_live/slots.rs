//! The hub task's table of subscribers' mailboxes, and subscribing (at once, or when a held
//! `since` is due: see `ahead`).

use std::sync::Arc;
use std::time::Instant;

use alerts::hub::{Filter, Hub, SubId};

use super::Mailbox;
use super::ahead::{Ahead, Reply};

/// Each subscriber's mailbox, by the hub's dense subscriber index (a broadcast looks up every
/// subscriber: an array read, not a hash), with the last sequence number the hub had when it
/// subscribed: alerts above it are live deliveries, the others a replay.
#[derive(Default)]
pub(super) struct Slots(Vec<Option<(SubId, Arc<Mailbox>, u64)>>);

impl Slots {
    /// The mailbox of `sub`, and the number above which its deliveries are live.
    pub(super) fn get(&self, sub: &SubId) -> Option<(&Arc<Mailbox>, u64)> {
        match self.0.get(sub.index()) {
            Some(Some((id, slot, live_after))) if id == sub => Some((slot, *live_after)),
            _ => None,
        }
    }

    pub(super) fn insert(&mut self, sub: SubId, mailbox: Arc<Mailbox>, live_after: u64) {
        let i = sub.index();
        if self.0.len() <= i {
            self.0.resize_with(i + 1, || None);
        }
        self.0[i] = Some((sub, mailbox, live_after));
    }

    pub(super) fn remove(&mut self, sub: &SubId) -> Option<Arc<Mailbox>> {
        let cell = self.0.get_mut(sub.index())?;
        match cell {
            Some((id, _, _)) if id == sub => cell.take().map(|(_, slot, _)| slot),
            _ => None,
        }
    }
}

/// Registers a subscriber and hands it its mailbox (undone if the client already left).
pub(super) fn subscribe(
    hub: &mut Hub,
    slots: &mut Slots,
    filter: Filter,
    since: Option<u64>,
    reply: Reply,
) {
    match hub.subscribe(filter, since, Instant::now()) {
        Ok(sub) => {
            let mailbox = Arc::new(Mailbox::default());
            slots.insert(sub, mailbox.clone(), hub.last_seq());
            if reply.send(Ok((sub, mailbox))).is_err() {
                hub.unsubscribe(sub);
                slots.remove(&sub);
            }
        }
        Err(err) => {
            let _ = reply.send(Err(err));
        }
    }
}

/// Subscribes the held `since`s the log has reached, or that waited long enough (see
/// [`Ahead`]).
pub(super) fn release(hub: &mut Hub, slots: &mut Slots, ahead: &mut Ahead) {
    for parked in ahead.due(hub.last_seq(), Instant::now()) {
        // A client that gave up gets nothing: no subscription made only to be undone.
        if !parked.reply.is_closed() {
            subscribe(hub, slots, parked.filter, Some(parked.since), parked.reply);
        }
    }
}
