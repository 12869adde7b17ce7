// Package oga owns the host side of the legacy oVirt Guest Agent (OGA) protocol, as VDSM speaks
// it (see docs/oga.md and the protocol reference it cites):
//
//   - framing and decoding of the guest's newline-delimited JSON stream (1 MiB line cap, UTF-8
//     replacement, the XML-invalid-character filter applied after JSON decoding, exact integers);
//   - translation of every guest message into a per-domain model exposed as *guest.Info;
//   - every host command with its API-version gate, and API version negotiation;
//   - the node-wide Listener that dials QEMU's listening unix socket of each domain, reconnects
//     with VDSM's fast-retry/cooldown policy and tracks responsiveness;
//   - OvirtGuestAgent, the per-domain handle the service layer reads and sends requests through;
//   - GuestAgentEvents, which turns VM lifecycle events into OGA lifecycle hooks.
//
// Nothing a guest sends can panic this package or grow its memory without bound: every line is
// capped, nesting depth is capped, and stored lists are capped.
package oga
