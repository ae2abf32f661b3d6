//! The grammar of OTTL conditions:
//!
//! ```text
//! condition  := or
//! or         := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | primary
//! primary    := "(" condition ")" | value (comparator value)?
//! value      := literal | constant | path | call
//! ```

use regex::Regex;

use super::ParseError;
use super::lexer::{Spanned, Token};

/// Deepest nesting of parentheses, `not` and calls accepted.
const MAX_DEPTH: usize = 64;

/// A compiled condition over paths of type `P`: span paths at ingest ([`Path`]), trace or span
/// fields in queries (`filter::query`).
#[derive(Debug, Clone)]
pub enum Condition<P = Path> {
    Or(Vec<Condition<P>>),
    And(Vec<Condition<P>>),
    Not(Box<Condition<P>>),
    Compare(Expr<P>, Comparator, Expr<P>),
    /// A value used as a condition: true only when it is the boolean `true`.
    Truthy(Expr<P>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
}

impl Comparator {
    /// Whether two values ordered so (`None`: of kinds that do not compare) satisfy the
    /// comparator: OTTL's rule, where unordered values are unequal and never less or greater.
    pub fn holds(self, ordering: Option<std::cmp::Ordering>) -> bool {
        use std::cmp::Ordering;
        match self {
            Comparator::Equal => ordering == Some(Ordering::Equal),
            Comparator::NotEqual => ordering != Some(Ordering::Equal),
            Comparator::Less => ordering == Some(Ordering::Less),
            Comparator::LessEqual => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
            Comparator::Greater => ordering == Some(Ordering::Greater),
            Comparator::GreaterEqual => {
                matches!(ordering, Some(Ordering::Greater | Ordering::Equal))
            }
        }
    }

    /// The comparison operator in SQL (both stores' dialects).
    pub fn sql(self) -> &'static str {
        match self {
            Comparator::Equal => "=",
            Comparator::NotEqual => "!=",
            Comparator::Less => "<",
            Comparator::LessEqual => "<=",
            Comparator::Greater => ">",
            Comparator::GreaterEqual => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

#[derive(Debug, Clone)]
pub enum Expr<P = Path> {
    Literal(Literal),
    Path(P),
    Call(Call<P>),
}

/// What a path reads from a span; `keys` index into map values.
#[derive(Debug, Clone, PartialEq)]
pub enum Path {
    Name,
    Kind,
    StatusCode,
    StatusMessage,
    TraceId,
    SpanId,
    ParentSpanId,
    TraceState,
    StartTime,
    EndTime,
    Attribute(Vec<String>),
    ResourceAttribute(Vec<String>),
    ScopeName,
    ScopeVersion,
    ScopeAttribute(Vec<String>),
}

#[derive(Debug, Clone)]
pub enum Call<P = Path> {
    IsMatch(Box<Expr<P>>, Regex),
    IsType(Box<Expr<P>>, TypeCheck),
    /// `HasTag("x")`: only where the context allows it ([`PathContext::has_tag`]).
    HasTag(String),
}

/// Where a condition is evaluated: what its paths name, and which functions it offers.
pub trait PathContext {
    type Path: Clone + std::fmt::Debug;

    /// The path of `segments` (`span.` already removed where the context allows it) indexed by
    /// `keys`, or why there is none; `column` is where the path starts.
    fn resolve(
        &self,
        segments: &[String],
        keys: Vec<String>,
        column: usize,
    ) -> Result<Self::Path, ParseError>;

    /// Whether `HasTag("x")` is a function of this context.
    fn has_tag(&self) -> bool {
        false
    }

    /// Whether a leading `span.` is dropped from paths (the ingest context, where everything
    /// is a span).
    fn strips_span_prefix(&self) -> bool {
        false
    }
}

/// The ingest context: paths of one span, as the Collector's filter processor names them.
pub struct SpanPaths;

impl PathContext for SpanPaths {
    type Path = Path;

    fn resolve(
        &self,
        segments: &[String],
        keys: Vec<String>,
        column: usize,
    ) -> Result<Path, ParseError> {
        let words: Vec<&str> = segments.iter().map(String::as_str).collect();
        let keyed = PathShape::new(segments, keys, column);
        match words.as_slice() {
            ["name"] => keyed.plain(Path::Name),
            ["kind"] => keyed.plain(Path::Kind),
            ["status", "code"] => keyed.plain(Path::StatusCode),
            ["status", "message"] => keyed.plain(Path::StatusMessage),
            ["trace_id"] | ["trace_id", "string"] => keyed.plain(Path::TraceId),
            ["span_id"] | ["span_id", "string"] => keyed.plain(Path::SpanId),
            ["parent_span_id"] | ["parent_span_id", "string"] => keyed.plain(Path::ParentSpanId),
            ["trace_state"] => keyed.plain(Path::TraceState),
            ["start_time_unix_nano"] => keyed.plain(Path::StartTime),
            ["end_time_unix_nano"] => keyed.plain(Path::EndTime),
            ["attributes"] => keyed.map(Path::Attribute),
            ["resource", "attributes"] => keyed.map(Path::ResourceAttribute),
            ["instrumentation_scope", "name"] => keyed.plain(Path::ScopeName),
            ["instrumentation_scope", "version"] => keyed.plain(Path::ScopeVersion),
            ["instrumentation_scope", "attributes"] => keyed.map(Path::ScopeAttribute),
            _ => Err(keyed.unknown()),
        }
    }

    fn strips_span_prefix(&self) -> bool {
        true
    }
}

/// A path's words and keys while it is resolved: the checks every context makes.
pub struct PathShape<'a> {
    segments: &'a [String],
    keys: Vec<String>,
    column: usize,
}

impl<'a> PathShape<'a> {
    pub fn new(segments: &'a [String], keys: Vec<String>, column: usize) -> Self {
        Self {
            segments,
            keys,
            column,
        }
    }

    fn joined(&self) -> String {
        self.segments.join(".")
    }

    /// The path is not a map: it takes no `["key"]`.
    pub fn plain<T>(&self, path: T) -> Result<T, ParseError> {
        if self.keys.is_empty() {
            Ok(path)
        } else {
            Err(self.error(format!(
                "{} is not a map and takes no [\"key\"]",
                self.joined()
            )))
        }
    }

    /// The path is a map: it needs at least one `["key"]`.
    pub fn map<T>(self, path: impl FnOnce(Vec<String>) -> T) -> Result<T, ParseError> {
        if self.keys.is_empty() {
            let joined = self.joined();
            Err(self.error(format!("{joined} needs a key: {joined}[\"key\"]")))
        } else {
            Ok(path(self.keys))
        }
    }

    /// The path is a map indexed by exactly one key.
    pub fn one_key<T>(self, path: impl FnOnce(String) -> T) -> Result<T, ParseError> {
        if self.keys.len() > 1 {
            let joined = self.joined();
            return Err(self.error(format!(
                "{joined} takes one key: {joined}[\"key\"]; nested maps are not searchable"
            )));
        }
        self.map(|mut keys| path(keys.remove(0)))
    }

    pub fn unknown(&self) -> ParseError {
        self.error(format!("unknown path {:?}", self.joined()))
    }

    pub fn error(&self, message: String) -> ParseError {
        ParseError {
            column: self.column,
            message,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeCheck {
    String,
    Int,
    Double,
    Bool,
    Map,
    List,
}

pub struct Parser<'c, C> {
    context: &'c C,
    tokens: Vec<Spanned>,
    position: usize,
    end_column: usize,
    depth: usize,
}

fn constant(name: &str) -> Option<i64> {
    Some(match name {
        "SPAN_KIND_UNSPECIFIED" => 0,
        "SPAN_KIND_INTERNAL" => 1,
        "SPAN_KIND_SERVER" => 2,
        "SPAN_KIND_CLIENT" => 3,
        "SPAN_KIND_PRODUCER" => 4,
        "SPAN_KIND_CONSUMER" => 5,
        "STATUS_CODE_UNSET" => 0,
        "STATUS_CODE_OK" => 1,
        "STATUS_CODE_ERROR" => 2,
        _ => return None,
    })
}

impl<'c, C: PathContext> Parser<'c, C> {
    pub fn new(context: &'c C, tokens: Vec<Spanned>, length: usize) -> Self {
        Self {
            context,
            tokens,
            position: 0,
            end_column: length + 1,
            depth: 0,
        }
    }

    pub fn parse(mut self) -> Result<Condition<C::Path>, ParseError> {
        if self.tokens.is_empty() {
            return Err(self.error_here("empty condition"));
        }
        let condition = self.or()?;
        if let Some(extra) = self.tokens.get(self.position) {
            return Err(ParseError {
                column: extra.column,
                message: format!("unexpected {} after the condition", describe(&extra.token)),
            });
        }
        Ok(condition)
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position).map(|spanned| &spanned.token)
    }

    fn column(&self) -> usize {
        self.tokens
            .get(self.position)
            .map_or(self.end_column, |spanned| spanned.column)
    }

    fn error_here(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            column: self.column(),
            message: message.into(),
        }
    }

    fn next(&mut self) -> Option<Token> {
        let token = self
            .tokens
            .get(self.position)
            .map(|spanned| spanned.token.clone());
        self.position += 1;
        token
    }

    fn expect(&mut self, expected: Token, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(&expected) {
            self.position += 1;
            Ok(())
        } else {
            Err(self.error_here(format!("expected {what}, found {}", self.found())))
        }
    }

    fn found(&self) -> String {
        self.peek().map_or("the end".to_owned(), describe)
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(word)) if word == keyword)
    }

    fn deeper(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Condition<C::Path>, ParseError> {
        let mut terms = vec![self.and()?];
        while self.is_keyword("or") {
            self.position += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Condition::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Condition<C::Path>, ParseError> {
        let mut terms = vec![self.unary()?];
        while self.is_keyword("and") {
            self.position += 1;
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Condition::And(terms)
        })
    }

    fn unary(&mut self) -> Result<Condition<C::Path>, ParseError> {
        if self.is_keyword("not") {
            self.position += 1;
            self.deeper()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Condition::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Condition<C::Path>, ParseError> {
        if self.peek() == Some(&Token::LeftParen) {
            self.position += 1;
            self.deeper()?;
            let inner = self.or()?;
            self.depth -= 1;
            self.expect(Token::RightParen, "\")\"")?;
            return Ok(inner);
        }
        let left = self.value()?;
        let comparator = match self.peek() {
            Some(Token::Equal) => Comparator::Equal,
            Some(Token::NotEqual) => Comparator::NotEqual,
            Some(Token::Less) => Comparator::Less,
            Some(Token::LessEqual) => Comparator::LessEqual,
            Some(Token::Greater) => Comparator::Greater,
            Some(Token::GreaterEqual) => Comparator::GreaterEqual,
            _ => return Ok(Condition::Truthy(left)),
        };
        self.position += 1;
        let right = self.value()?;
        Ok(Condition::Compare(left, comparator, right))
    }

    fn value(&mut self) -> Result<Expr<C::Path>, ParseError> {
        let column = self.column();
        let Some(token) = self.next() else {
            return Err(ParseError {
                column,
                message: "expected a value, found the end".into(),
            });
        };
        match token {
            Token::Str(text) => Ok(Expr::Literal(Literal::Str(text))),
            Token::Int(number) => Ok(Expr::Literal(Literal::Int(number))),
            Token::Float(number) => Ok(Expr::Literal(Literal::Float(number))),
            Token::Ident(word) => match word.as_str() {
                "nil" => Ok(Expr::Literal(Literal::Nil)),
                "true" => Ok(Expr::Literal(Literal::Bool(true))),
                "false" => Ok(Expr::Literal(Literal::Bool(false))),
                _ if self.peek() == Some(&Token::LeftParen) => self.call(word, column),
                _ => {
                    if let Some(number) = constant(&word) {
                        return Ok(Expr::Literal(Literal::Int(number)));
                    }
                    self.path(word, column).map(Expr::Path)
                }
            },
            other => Err(ParseError {
                column,
                message: format!("expected a value, found {}", describe(&other)),
            }),
        }
    }

    fn call(&mut self, name: String, column: usize) -> Result<Expr<C::Path>, ParseError> {
        self.position += 1; // "("
        self.deeper()?;
        let mut arguments = Vec::new();
        if self.peek() != Some(&Token::RightParen) {
            loop {
                let argument_column = self.column();
                arguments.push((self.value()?, argument_column));
                if self.peek() == Some(&Token::Comma) {
                    self.position += 1;
                    continue;
                }
                break;
            }
        }
        self.expect(Token::RightParen, "\")\" or \",\"")?;
        self.depth -= 1;
        let arity = |expected: usize| -> Result<(), ParseError> {
            if arguments.len() == expected {
                Ok(())
            } else {
                Err(ParseError {
                    column,
                    message: format!(
                        "{name} takes {expected} argument(s), got {}",
                        arguments.len()
                    ),
                })
            }
        };
        let type_check = match name.as_str() {
            "IsMatch" => {
                arity(2)?;
                let mut arguments = arguments.into_iter();
                let (target, _) = arguments.next().expect("arity checked");
                let (pattern, pattern_column) = arguments.next().expect("arity checked");
                let Expr::Literal(Literal::Str(pattern)) = pattern else {
                    return Err(ParseError {
                        column: pattern_column,
                        message: "IsMatch's pattern must be a string literal".into(),
                    });
                };
                let regex = Regex::new(&pattern).map_err(|error| ParseError {
                    column: pattern_column,
                    message: format!("invalid regular expression: {error}"),
                })?;
                return Ok(Expr::Call(Call::IsMatch(Box::new(target), regex)));
            }
            "HasTag" if self.context.has_tag() => {
                arity(1)?;
                let (tag, tag_column) = arguments.into_iter().next().expect("arity checked");
                let Expr::Literal(Literal::Str(tag)) = tag else {
                    return Err(ParseError {
                        column: tag_column,
                        message: "HasTag's tag must be a string literal".into(),
                    });
                };
                return Ok(Expr::Call(Call::HasTag(tag)));
            }
            "IsString" => TypeCheck::String,
            "IsInt" => TypeCheck::Int,
            "IsDouble" => TypeCheck::Double,
            "IsBool" => TypeCheck::Bool,
            "IsMap" => TypeCheck::Map,
            "IsList" => TypeCheck::List,
            _ => {
                return Err(ParseError {
                    column,
                    message: format!(
                        "unknown function {name}; supported: IsMatch, {}IsString, IsInt, \
                         IsDouble, IsBool, IsMap, IsList",
                        if self.context.has_tag() {
                            "HasTag, "
                        } else {
                            ""
                        }
                    ),
                });
            }
        };
        arity(1)?;
        let (value, _) = arguments.into_iter().next().expect("arity checked");
        Ok(Expr::Call(Call::IsType(Box::new(value), type_check)))
    }

    fn path(&mut self, first: String, column: usize) -> Result<C::Path, ParseError> {
        let mut segments = vec![first];
        while self.peek() == Some(&Token::Dot) {
            self.position += 1;
            match self.next() {
                Some(Token::Ident(segment)) => segments.push(segment),
                _ => {
                    self.position -= 1;
                    return Err(self.error_here("expected a name after \".\""));
                }
            }
        }
        let mut keys = Vec::new();
        while self.peek() == Some(&Token::LeftBracket) {
            self.position += 1;
            let key_column = self.column();
            match self.next() {
                Some(Token::Str(key)) => keys.push(key),
                _ => {
                    return Err(ParseError {
                        column: key_column,
                        message: "expected a string key inside [ ]".into(),
                    });
                }
            }
            self.expect(Token::RightBracket, "\"]\"")?;
        }
        if self.context.strips_span_prefix()
            && segments.first().map(String::as_str) == Some("span")
            && segments.len() > 1
        {
            segments.remove(0);
        }
        self.context.resolve(&segments, keys, column)
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Ident(word) => format!("{word:?}"),
        Token::Str(text) => format!("string {text:?}"),
        Token::Int(number) => format!("number {number}"),
        Token::Float(number) => format!("number {number}"),
        Token::LeftParen => "\"(\"".into(),
        Token::RightParen => "\")\"".into(),
        Token::LeftBracket => "\"[\"".into(),
        Token::RightBracket => "\"]\"".into(),
        Token::Dot => "\".\"".into(),
        Token::Comma => "\",\"".into(),
        Token::Equal => "\"==\"".into(),
        Token::NotEqual => "\"!=\"".into(),
        Token::Less => "\"<\"".into(),
        Token::LessEqual => "\"<=\"".into(),
        Token::Greater => "\">\"".into(),
        Token::GreaterEqual => "\">=\"".into(),
    }
}
