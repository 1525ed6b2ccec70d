//! HRANDFIELD's and SRANDMEMBER's counts, and their replies of random picks.

use rand::seq::{IndexedRandom, SliceRandom};

use super::{CommandError, Ctx};
use crate::server::reply::ReplyWriter;

/// How many to pick, and whether the same one may come twice (a negative count).
#[derive(Clone, Copy)]
pub(super) struct Picks {
    count: usize,
    repeats: bool,
}

impl Picks {
    /// Redis takes any count from -i64::MAX to i64::MAX (a positive one past the size means
    /// all of them); cstore also refuses repeats whose doubling would overflow.
    pub(super) fn parse(count: i64) -> Result<Picks, CommandError> {
        if count == i64::MIN {
            return Err(CommandError::Other(format!(
                "ERR value is out of range, value must between {} and {}",
                -i64::MAX,
                i64::MAX
            )));
        }
        if count < -(i64::MAX / 2) {
            return Err(CommandError::Other("ERR value is out of range".into()));
        }
        Ok(Picks { count: usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX), repeats: count < 0 })
    }
}

/// Replies with an array of `picks` of `items`, each written by `write` as `elements` array
/// elements. Distinct picks come in a random order (all of them when the count covers them).
/// Picks with repeats are written one at a time and stop once the client's output overflowed
/// (the client is being disconnected), so a huge negative count does not build its whole
/// reply first; the array then ends short, as no one reads it.
pub(super) fn reply_picks<T>(
    ctx: &mut Ctx<'_, '_>,
    items: &[T],
    picks: Picks,
    elements: usize,
    mut write: impl FnMut(&mut ReplyWriter<'_>, &T),
) {
    let mut rng = rand::rng();
    if items.is_empty() {
        ctx.out.array(0);
        return;
    }
    if picks.repeats {
        ctx.out.array(picks.count.saturating_mul(elements));
        for _ in 0..picks.count {
            if ctx.out.overflowed() {
                return;
            }
            if let Some(item) = items.choose(&mut rng) {
                write(ctx.out, item);
            }
        }
        return;
    }
    let mut chosen: Vec<&T> = items.sample(&mut rng, picks.count.min(items.len())).collect();
    chosen.shuffle(&mut rng);
    ctx.out.array(chosen.len() * elements);
    chosen.into_iter().for_each(|item| write(ctx.out, item));
}
