//! `-L`: which listing the options ask for, and the conflicts between
//! them that ipvsadm's option matrix cannot express.

use crate::ctrl::proto::Request;

use super::entry::Entry;
use super::invocation::AdmError;
use super::listing::Format;
use super::options::Opt;

/// The request of a checked `-L` command line; settles its view's format.
pub(super) fn request(e: &mut Entry) -> Result<Request, AdmError> {
    let listing_opts = e.has(Opt::Stats) || e.has(Opt::Rate) || e.has(Opt::Thresholds);
    if ((e.has(Opt::Connection) || e.has(Opt::Timeout)) && listing_opts)
        || (e.has(Opt::Timeout) && e.has(Opt::PersistentConn))
    {
        return Err(AdmError::fail("options conflicts in the list command"));
    }
    if e.view.persistent_conn && e.view.listing.format == Format::Plain {
        e.view.listing.format = Format::PersistentConn;
    }
    let service = e.service();
    Ok(if e.has(Opt::Connection) {
        Request::ListConns
    } else if service.is_some() {
        Request::List { service }
    } else if e.has(Opt::Timeout) {
        Request::GetTimeouts
    } else {
        Request::List { service: None }
    })
}
