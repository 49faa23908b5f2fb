// Package e2e holds drive-node's end-to-end tests: real drive-node binaries
// on hosts that are network namespaces (see internal/netlab), real QUIC,
// real mDNS multicast, real pebble and SQLite files on disk.
package e2e
