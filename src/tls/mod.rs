//! TLS for both sides: the certificate the listeners present ([`certs`]), its reload when the
//! files change ([`watch`]), the server configurations ([`config`]), and the server's side of
//! a TLS connection as bytes in and out ([`session`]), which RTMPS reads through.

pub mod certs;
pub mod config;
pub mod session;
pub mod watch;
