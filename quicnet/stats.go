package quicnet

import "github.com/quic-go/quic-go"

// Stats returns the connection's statistics: bytes and packets sent and
// received, losses, round-trip times, congestion window.
func (p *Peer) Stats() quic.ConnectionStats { return p.conn.ConnectionStats() }
