//! Model prices, used for the cost of an LLM call that does not report one.
//!
//! Prices are USD per million tokens, list prices of the providers' public price pages (standard
//! tier, no caching or batch discounts). A model matches the longest listed name it starts with,
//! after dropping a provider prefix (`openai/`, `models/`, …), so `gpt-4o-mini-2024-07-18` is
//! priced as `gpt-4o-mini`. Configuration can add or override entries.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

/// The price of one model.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// USD per million input (prompt) tokens.
    pub input_per_million: f64,
    /// USD per million output (completion) tokens.
    pub output_per_million: f64,
}

const fn price(input_per_million: f64, output_per_million: f64) -> ModelPrice {
    ModelPrice {
        input_per_million,
        output_per_million,
    }
}

/// The built-in table.
const DEFAULT_PRICES: &[(&str, ModelPrice)] = &[
    // OpenAI
    ("gpt-5", price(1.25, 10.0)),
    ("gpt-5-mini", price(0.25, 2.0)),
    ("gpt-5-nano", price(0.05, 0.40)),
    ("gpt-4.1", price(2.0, 8.0)),
    ("gpt-4.1-mini", price(0.40, 1.60)),
    ("gpt-4.1-nano", price(0.10, 0.40)),
    ("gpt-4o", price(2.50, 10.0)),
    ("gpt-4o-mini", price(0.15, 0.60)),
    ("gpt-4-turbo", price(10.0, 30.0)),
    ("gpt-4", price(30.0, 60.0)),
    ("gpt-3.5-turbo", price(0.50, 1.50)),
    ("o1", price(15.0, 60.0)),
    ("o1-mini", price(1.10, 4.40)),
    ("o3", price(2.0, 8.0)),
    ("o3-mini", price(1.10, 4.40)),
    ("o4-mini", price(1.10, 4.40)),
    ("text-embedding-3-small", price(0.02, 0.0)),
    ("text-embedding-3-large", price(0.13, 0.0)),
    ("text-embedding-ada-002", price(0.10, 0.0)),
    // Anthropic
    ("claude-opus-4", price(15.0, 75.0)),
    ("claude-sonnet-4", price(3.0, 15.0)),
    ("claude-haiku-4", price(1.0, 5.0)),
    ("claude-3-7-sonnet", price(3.0, 15.0)),
    ("claude-3-5-sonnet", price(3.0, 15.0)),
    ("claude-3-5-haiku", price(0.80, 4.0)),
    ("claude-3-opus", price(15.0, 75.0)),
    ("claude-3-sonnet", price(3.0, 15.0)),
    ("claude-3-haiku", price(0.25, 1.25)),
    // Google
    ("gemini-2.5-pro", price(1.25, 10.0)),
    ("gemini-2.5-flash", price(0.30, 2.50)),
    ("gemini-2.5-flash-lite", price(0.10, 0.40)),
    ("gemini-2.0-flash", price(0.10, 0.40)),
    ("gemini-2.0-flash-lite", price(0.075, 0.30)),
    ("gemini-1.5-pro", price(1.25, 5.0)),
    ("gemini-1.5-flash", price(0.075, 0.30)),
    // Mistral
    ("mistral-large", price(2.0, 6.0)),
    ("mistral-medium", price(0.40, 2.0)),
    ("mistral-small", price(0.10, 0.30)),
    ("codestral", price(0.30, 0.90)),
    ("ministral-8b", price(0.10, 0.10)),
    ("ministral-3b", price(0.04, 0.04)),
    ("open-mistral-nemo", price(0.15, 0.15)),
    ("pixtral-large", price(2.0, 6.0)),
];

/// The price table in force: the built-in one with configured entries over it.
#[derive(Debug, Clone)]
pub struct Pricing {
    /// Lowercase model name prefix to price.
    prices: BTreeMap<String, ModelPrice>,
    /// Tells tables apart in the threads' memos of their last lookups ([`RECENT`]); a clone
    /// has the same prices and keeps it.
    table: u64,
}

/// Numbers the tables made.
static TABLES: AtomicU64 = AtomicU64::new(0);

/// How many lookups each thread remembers, and the longest model name it remembers.
const REMEMBERED: usize = 4;
const REMEMBERED_NAME_BYTES: usize = 128;

thread_local! {
    /// Each thread's last lookups: the table, the model as the span named it, and its price.
    /// The LLM spans of a request name the same few models again and again, and looking one up
    /// by its candidate prefixes took ~1,300 instructions, a tenth of normalizing the span.
    static RECENT: RefCell<Vec<(u64, String, Option<ModelPrice>)>> =
        const { RefCell::new(Vec::new()) };
}

impl Default for Pricing {
    fn default() -> Self {
        Self::with_overrides(&BTreeMap::new())
    }
}

impl Pricing {
    /// The built-in table with `overrides` (model name → price) added or replacing entries.
    pub fn with_overrides(overrides: &BTreeMap<String, ModelPrice>) -> Self {
        let mut prices: BTreeMap<String, ModelPrice> = DEFAULT_PRICES
            .iter()
            .map(|(name, price)| ((*name).to_owned(), *price))
            .collect();
        for (name, price) in overrides {
            prices.insert(name.to_ascii_lowercase(), *price);
        }
        Self {
            prices,
            table: TABLES.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The price of `model`: the longest listed name it starts with.
    ///
    /// A listed name matches when it is the model or a prefix of it that ends where a version or
    /// variant begins (`o1` prices `o1-2024-12-17` but `gpt-4` does not price `gpt-4o`), so the
    /// candidates are the model itself and its prefixes ending before a `-`, `@`, `:` or `.`;
    /// they are looked up longest first. (This runs for every LLM span without a reported cost:
    /// one map lookup per candidate instead of a scan of the table and a lowercased copy.)
    pub fn lookup(&self, model: &str) -> Option<ModelPrice> {
        RECENT.with_borrow_mut(|recent| {
            let remembered = recent
                .iter()
                .find(|(table, name, _)| *table == self.table && name == model);
            if let Some((_, _, price)) = remembered {
                return *price;
            }
            let price = self.find(model);
            if model.len() <= REMEMBERED_NAME_BYTES {
                if recent.len() == REMEMBERED {
                    recent.remove(0);
                }
                recent.push((self.table, model.to_owned(), price));
            }
            price
        })
    }

    /// [`Pricing::lookup`] without the memo.
    fn find(&self, model: &str) -> Option<ModelPrice> {
        let lowered;
        let model = if model.bytes().any(|byte| byte.is_ascii_uppercase()) {
            lowered = model.to_ascii_lowercase();
            lowered.as_str()
        } else {
            model
        };
        let model = model.rsplit('/').next().unwrap_or(model);
        std::iter::once(model.len())
            .chain(
                model
                    .bytes()
                    .enumerate()
                    .rev()
                    .filter(|(_, byte)| matches!(byte, b'-' | b'@' | b':' | b'.'))
                    .map(|(end, _)| end),
            )
            .find_map(|end| self.prices.get(&model[..end]).copied())
    }

    /// Prompt, completion and total cost of a call, when the model is priced and tokens known.
    pub fn cost(
        &self,
        model: Option<&str>,
        prompt_tokens: Option<i64>,
        completion_tokens: Option<i64>,
    ) -> Option<(f64, f64, f64)> {
        let price = self.lookup(model?)?;
        if prompt_tokens.is_none() && completion_tokens.is_none() {
            return None;
        }
        let prompt = prompt_tokens.unwrap_or(0).max(0) as f64 * price.input_per_million / 1e6;
        let completion =
            completion_tokens.unwrap_or(0).max(0) as f64 * price.output_per_million / 1e6;
        Some((prompt, completion, prompt + completion))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_matching_name_wins() {
        let pricing = Pricing::default();
        assert_eq!(
            pricing.lookup("gpt-4o-mini-2024-07-18"),
            Some(price(0.15, 0.60))
        );
        assert_eq!(pricing.lookup("gpt-4o-2024-08-06"), Some(price(2.50, 10.0)));
        assert_eq!(pricing.lookup("openai/gpt-4o"), Some(price(2.50, 10.0)));
        assert_eq!(pricing.lookup("GPT-4"), Some(price(30.0, 60.0)));
        assert_eq!(
            pricing.lookup("gpt-4.1-mini-2025-04-14"),
            Some(price(0.40, 1.60))
        );
        assert_eq!(
            pricing.lookup("claude-3-5-sonnet-20241022"),
            Some(price(3.0, 15.0))
        );
        assert_eq!(
            pricing.lookup("models/gemini-1.5-flash-002"),
            Some(price(0.075, 0.30))
        );
        assert_eq!(pricing.lookup("o1-mini"), Some(price(1.10, 4.40)));
        assert_eq!(pricing.lookup("gpt-4x"), None);
        assert_eq!(pricing.lookup("llama-3"), None);
    }

    #[test]
    fn overrides_and_cost() {
        let overrides = BTreeMap::from([
            ("my-model".to_owned(), price(1.0, 2.0)),
            ("gpt-4o-mini".to_owned(), price(0.0, 0.0)),
        ]);
        let pricing = Pricing::with_overrides(&overrides);
        let (prompt, completion, total) = pricing
            .cost(Some("my-model-v2"), Some(1_000_000), Some(500_000))
            .unwrap();
        assert_eq!((prompt, completion, total), (1.0, 1.0, 2.0));
        assert_eq!(
            pricing
                .cost(Some("gpt-4o-mini"), Some(10), Some(10))
                .unwrap()
                .2,
            0.0
        );
        assert_eq!(pricing.cost(Some("my-model"), None, None), None);
        assert_eq!(pricing.cost(None, Some(1), Some(1)), None);
    }

    #[test]
    fn each_table_answers_for_itself_however_the_lookups_interleave() {
        let default = Pricing::default();
        let free = Pricing::with_overrides(&BTreeMap::from([(
            "gpt-4o-mini".to_owned(),
            price(0.0, 0.0),
        )]));
        let long_name = format!("gpt-4o-mini-{}", "x".repeat(200));
        let models = [
            "gpt-4o-mini-2024-07-18",
            "GPT-4",
            "llama-3",
            "gpt-4o-mini-2024-07-18",
            "o1-mini",
            "claude-3-5-sonnet-20241022",
            "gpt-4o-mini",
            long_name.as_str(),
            "GPT-4",
        ];
        for _ in 0..3 {
            for model in models {
                assert_eq!(default.lookup(model), default.find(model), "{model}");
                assert_eq!(free.lookup(model), free.find(model), "{model}");
                assert_eq!(free.clone().lookup(model), free.find(model), "{model}");
            }
        }
        assert_eq!(free.lookup("gpt-4o-mini-2024-07-18"), Some(price(0.0, 0.0)));
        assert_eq!(
            default.lookup("gpt-4o-mini-2024-07-18"),
            Some(price(0.15, 0.60))
        );
        assert_eq!(free.lookup(&long_name), Some(price(0.0, 0.0)));
        RECENT.with_borrow(|recent| {
            assert_eq!(recent.len(), REMEMBERED);
            assert!(
                recent
                    .iter()
                    .all(|(_, name, _)| name.len() <= REMEMBERED_NAME_BYTES)
            );
        });
    }
}
