//! Two threads, one handing items to the other: the producer runs on a
//! thread of its own, the consumer on the caller's. Items cross in
//! batches through a bounded queue (memory stays flat whatever the input's
//! size), and emptied batches go back to be refilled (no allocation per
//! batch once the queue is full).

use std::sync::mpsc;

/// Items per batch: enough that crossing costs nothing per item.
const BATCH: usize = 4096;
/// Full batches waiting for the consumer at most.
const BATCHES_QUEUED: usize = 4;

/// The producer's end: items pushed here reach the consumer, in order.
pub struct Emitter<'q, T> {
    batch: Vec<T>,
    full: &'q mpsc::SyncSender<Vec<T>>,
    emptied: &'q mpsc::Receiver<Vec<T>>,
}

impl<T> std::fmt::Debug for Emitter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Emitter({} items in the batch)", self.batch.len())
    }
}

impl<T> Emitter<'_, T> {
    /// Hands `item` on. Inlined into the producer, so an item is written
    /// straight into the batch.
    #[inline]
    pub fn emit(&mut self, item: T) {
        self.batch.push(item);
        if self.batch.len() == BATCH {
            self.send();
        }
    }

    #[cold]
    fn send(&mut self) {
        let next = self
            .emptied
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
        // A send fails only when the consumer is gone (it panicked): the
        // rest is not wanted.
        let _ = self.full.send(std::mem::replace(&mut self.batch, next));
    }
}

/// Runs `produce` on a new thread, handing each item it emits to
/// `consume` on this one, and returns what `produce` returned. A panic on
/// either side is passed on to the caller.
pub fn split<T: Send, R: Send>(
    produce: impl FnOnce(&mut Emitter<'_, T>) -> R + Send,
    mut consume: impl FnMut(T),
) -> R {
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<T>>(BATCHES_QUEUED);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<T>>();
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let mut emitter = Emitter {
                batch: Vec::with_capacity(BATCH),
                full: &full_tx,
                emptied: &empty_rx,
            };
            let done = produce(&mut emitter);
            if !emitter.batch.is_empty() {
                emitter.send();
            }
            done
        });
        for mut batch in full_rx {
            for item in batch.drain(..) {
                consume(item);
            }
            let _ = empty_tx.send(batch);
        }
        producer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn every_item_in_order_and_the_result() {
        let mut seen = Vec::new();
        let sum = split(
            |out| {
                let mut sum = 0u64;
                for i in 0..3 * super::BATCH as u64 + 7 {
                    out.emit(i);
                    sum += i;
                }
                sum
            },
            |i| seen.push(i),
        );
        assert_eq!(seen.len(), 3 * super::BATCH + 7);
        assert!(seen.iter().enumerate().all(|(n, &i)| n as u64 == i));
        assert_eq!(sum, seen.iter().sum::<u64>());
    }

    #[test]
    #[should_panic(expected = "consumer")]
    fn a_panicking_consumer_does_not_hang_the_producer() {
        split(
            |out| {
                for i in 0..100 * super::BATCH {
                    out.emit(i);
                }
            },
            |i| assert!(i < super::BATCH, "consumer"),
        );
    }
}
