//! How many drafted tokens to verify at the next step, adapted to how the
//! recent drafts fared.
//!
//! Verifying `n` drafted tokens costs more than one plain decoding step (the
//! weights are read once, but every row is computed), so drafts that keep
//! being rejected make decoding slower than plain greedy. The budget grows
//! while drafts are accepted whole, shrinks to just past the accepted prefix
//! when one is cut short, and after a draft is rejected outright drafting
//! pauses for a number of steps that doubles with every further rejection.

/// The adaptive draft length.
#[derive(Debug, Clone)]
pub(crate) struct DraftBudget {
    limit: usize,
    max: usize,
    pause: usize,
    backoff: usize,
}

/// Longest pause after repeated rejections, in decoding steps.
const MAX_BACKOFF: usize = 16;

impl DraftBudget {
    /// A budget of at most `max` drafted tokens per step.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            limit: max.clamp(1, 4),
            max: max.max(1),
            pause: 0,
            backoff: 1,
        }
    }

    /// Drafted tokens to verify this step; 0 while drafting is paused.
    pub(crate) fn allowance(&mut self) -> usize {
        if self.pause > 0 {
            self.pause -= 1;
            return 0;
        }
        self.limit
    }

    /// Records that `accepted` of `proposed` drafted tokens were right.
    pub(crate) fn record(&mut self, proposed: usize, accepted: usize) {
        if proposed == 0 {
            return;
        }
        if accepted == 0 {
            self.pause = self.backoff;
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            self.limit = (self.limit / 2).max(1);
            return;
        }
        self.backoff = 1;
        self.limit = if accepted == proposed {
            (self.limit * 2).min(self.max)
        } else {
            (accepted + 1).min(self.max)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_on_success_and_backs_off_on_rejection() {
        let mut b = DraftBudget::new(10);
        assert_eq!(b.allowance(), 4);
        b.record(4, 4);
        assert_eq!(b.allowance(), 8);
        b.record(8, 8);
        assert_eq!(b.allowance(), 10);
        b.record(10, 2);
        assert_eq!(b.allowance(), 3);
        b.record(3, 0);
        // Paused one step, then two after a second rejection.
        assert_eq!(b.allowance(), 0);
        assert_eq!(b.allowance(), 1);
        b.record(1, 0);
        assert_eq!((b.allowance(), b.allowance(), b.allowance()), (0, 0, 1));
        b.record(1, 1);
        assert_eq!(b.allowance(), 2);
        // Nothing proposed changes nothing.
        b.record(0, 0);
        assert_eq!(b.allowance(), 2);
    }
}
