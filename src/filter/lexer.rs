//! Tokens of OTTL conditions.

use super::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    LeftParen,
    RightParen,
    LeftBracket,
    RightBracket,
    Dot,
    Comma,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
}

/// A token and the 1-based column where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub token: Token,
    pub column: usize,
}

pub fn tokenize(text: &str) -> Result<Vec<Spanned>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let column = index + 1;
        let character = chars[index];
        if character.is_whitespace() {
            index += 1;
            continue;
        }
        let two = chars.get(index + 1).copied();
        let simple = match (character, two) {
            ('(', _) => Some((Token::LeftParen, 1)),
            (')', _) => Some((Token::RightParen, 1)),
            ('[', _) => Some((Token::LeftBracket, 1)),
            (']', _) => Some((Token::RightBracket, 1)),
            (',', _) => Some((Token::Comma, 1)),
            ('=', Some('=')) => Some((Token::Equal, 2)),
            ('!', Some('=')) => Some((Token::NotEqual, 2)),
            ('<', Some('=')) => Some((Token::LessEqual, 2)),
            ('>', Some('=')) => Some((Token::GreaterEqual, 2)),
            ('<', _) => Some((Token::Less, 1)),
            ('>', _) => Some((Token::Greater, 1)),
            ('.', Some(next)) if !next.is_ascii_digit() => Some((Token::Dot, 1)),
            _ => None,
        };
        if let Some((token, length)) = simple {
            tokens.push(Spanned { token, column });
            index += length;
            continue;
        }
        if character == '"' {
            let (value, next) = string_literal(&chars, index)?;
            tokens.push(Spanned {
                token: Token::Str(value),
                column,
            });
            index = next;
            continue;
        }
        if character.is_ascii_digit()
            || (character == '-' && two.is_some_and(|next| next.is_ascii_digit() || next == '.'))
            || (character == '.' && two.is_some_and(|next| next.is_ascii_digit()))
        {
            let start = index;
            index += 1;
            while index < chars.len()
                && (chars[index].is_ascii_alphanumeric() || matches!(chars[index], '.' | '_'))
            {
                // An exponent may carry a sign: 1e-3.
                if matches!(chars[index], 'e' | 'E')
                    && matches!(chars.get(index + 1), Some('+' | '-'))
                {
                    index += 1;
                }
                index += 1;
            }
            let literal: String = chars[start..index].iter().collect();
            let token = if literal.contains(['.', 'e', 'E']) {
                literal.parse().map(Token::Float).ok()
            } else {
                literal.parse().map(Token::Int).ok()
            };
            let token = token.ok_or_else(|| ParseError {
                column,
                message: format!("invalid number {literal:?}"),
            })?;
            tokens.push(Spanned { token, column });
            continue;
        }
        if character.is_alphabetic() || character == '_' {
            let start = index;
            while index < chars.len() && (chars[index].is_alphanumeric() || chars[index] == '_') {
                index += 1;
            }
            tokens.push(Spanned {
                token: Token::Ident(chars[start..index].iter().collect()),
                column,
            });
            continue;
        }
        return Err(ParseError {
            column,
            message: format!("unexpected character {character:?}"),
        });
    }
    Ok(tokens)
}

/// A double-quoted string with `\"`, `\\`, `\n`, `\t` escapes; returns it and the index after it.
fn string_literal(chars: &[char], start: usize) -> Result<(String, usize), ParseError> {
    let mut value = String::new();
    let mut index = start + 1;
    while index < chars.len() {
        match chars[index] {
            '"' => return Ok((value, index + 1)),
            '\\' => {
                let escaped = chars.get(index + 1).ok_or(ParseError {
                    column: index + 1,
                    message: "unfinished escape".into(),
                })?;
                value.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => *other,
                });
                index += 2;
            }
            other => {
                value.push(other);
                index += 1;
            }
        }
    }
    Err(ParseError {
        column: start + 1,
        message: "string is not closed".into(),
    })
}
