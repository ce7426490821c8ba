// Package dnstest is a DNS server for tests: it answers each question
// on a UDP socket with the replies a function gives.
package dnstest

import (
	"net"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Reply is one reply to send: its ID, rcode and A records.
type Reply struct {
	ID    uint16
	RCode dnsmessage.RCode
	A     [][4]byte
}

// Serve answers the questions that come to addr (UDP) with the replies
// answer gives for each, in order, until the test ends; it returns the
// address it listens on.
func Serve(t testing.TB, addr string, answer func(h dnsmessage.Header, q dnsmessage.Question) []Reply) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			for _, r := range answer(h, q) {
				b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: r.ID, Response: true, RCode: r.RCode, RecursionAvailable: true})
				_ = b.StartQuestions()
				_ = b.Question(q)
				_ = b.StartAnswers()
				for _, a := range r.A {
					_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a})
				}
				out, _ := b.Finish()
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}
