package resolver

import (
	"context"
	"net"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/bulkhead-os/bulkhead/hostd/engine/network/resolver/dnstest"
)

func question(t *testing.T, id uint16, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	_ = b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// parse returns a reply's ID, rcode and A records.
func parse(t *testing.T, msg []byte) (uint16, dnsmessage.RCode, []string) {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(msg); err != nil {
		t.Fatalf("unpacking the reply: %v", err)
	}
	var as []string
	for _, a := range m.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			as = append(as, net.IP(r.A[:]).String())
		}
	}
	return m.Header.ID, m.Header.RCode, as
}

// upstream answers on loopback: first a forged reply with another ID (as
// an attacker racing the real server would), then the real one with
// 192.0.2.9.
func upstream(t *testing.T) string {
	return dnstest.Serve(t, "127.0.0.1:0", func(h dnsmessage.Header, q dnsmessage.Question) []dnstest.Reply {
		return []dnstest.Reply{{ID: h.ID + 1, A: [][4]byte{{6, 6, 6, 6}}}, {ID: h.ID, A: [][4]byte{{192, 0, 2, 9}}}}
	})
}

// TestAnswer: members get their network's names (any case) and nothing
// else for them; other names go upstream, where a reply with another ID
// is not taken; a client that is not a member is refused.
func TestAnswer(t *testing.T) {
	member, stranger := net.ParseIP("10.89.0.3"), net.ParseIP("10.89.0.200")
	s := &Server{
		Lookup: func(client net.IP, name string) ([]net.IP, bool) {
			if !client.Equal(member) {
				return nil, false
			}
			if name == "web" {
				return []net.IP{net.ParseIP("10.89.0.2")}, true
			}
			return nil, true
		},
		Upstreams: func() []string { return []string{upstream(t)} },
		ctx:       context.Background(),
	}
	for _, c := range []struct {
		client net.IP
		name   string
		typ    dnsmessage.Type
		rcode  dnsmessage.RCode
		as     []string
	}{
		{member, "web.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.89.0.2"}},
		{member, "WEB.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.89.0.2"}},
		{member, "web.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, nil},
		{member, "example.org.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"192.0.2.9"}},
		{stranger, "web.", dnsmessage.TypeA, dnsmessage.RCodeRefused, nil},
		{stranger, "example.org.", dnsmessage.TypeA, dnsmessage.RCodeRefused, nil},
	} {
		out := s.answer(question(t, 4242, c.name, c.typ), c.client, "udp")
		id, rcode, as := parse(t, out)
		if id != 4242 || rcode != c.rcode || len(as) != len(c.as) || (len(as) > 0 && as[0] != c.as[0]) {
			t.Errorf("%s asks %s %v: got ID %d, %v, %v; want ID 4242, %v, %v", c.client, c.name, c.typ, id, rcode, as, c.rcode, c.as)
		}
	}
	// A reply is not answered.
	reply := question(t, 1, "web.", dnsmessage.TypeA)
	reply[2] |= 0x80
	if out := s.answer(reply, member, "udp"); out != nil {
		t.Errorf("a reply sent as a question: got an answer %x", out)
	}
}
