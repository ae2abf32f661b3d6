//! The commands that talk to a running server over HTTP, as any client would (`spanhouse
//! export`): no store is opened.

pub mod export;
