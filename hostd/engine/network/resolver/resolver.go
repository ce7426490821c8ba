package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
)

// TTL of the answers for container names, in seconds (dockerd's).
const TTL = 600

// forwardTimeout bounds one upstream's answer.
const forwardTimeout = 3 * time.Second

// Lookup answers name (lower case, no final dot) for the client at
// address client: the addresses it has on the network, none for a name
// the network does not have, and member false when client is not one of
// the network's containers (it is then refused any answer).
type Lookup func(client net.IP, name string) (ips []net.IP, member bool)

// Server is one network's resolver.
type Server struct {
	Addr   net.IP // the network's gateway address
	Device string // the network's bridge: only its packets are received
	Lookup Lookup
	// Upstreams are the resolvers (host:port) other names go to, asked
	// again at each question so a changed resolv.conf takes effect.
	Upstreams func() []string
	Log       *slog.Logger

	udp    net.PacketConn
	tcp    net.Listener
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// Start listens on Addr port 53, UDP and TCP, on Device alone.
func (s *Server) Start() error {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, s.Device)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	addr := net.JoinHostPort(s.Addr.String(), "53")
	var err error
	if s.udp, err = lc.ListenPacket(s.ctx, "udp4", addr); err != nil {
		return fmt.Errorf("resolver of %s: listening on udp %s: %w", s.Device, addr, err)
	}
	if s.tcp, err = lc.Listen(s.ctx, "tcp4", addr); err != nil {
		s.udp.Close()
		return fmt.Errorf("resolver of %s: listening on tcp %s: %w", s.Device, addr, err)
	}
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	return nil
}

// Close stops the server and waits for its goroutines.
func (s *Server) Close() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	err := errors.Join(s.udp.Close(), s.tcp.Close())
	s.wg.Wait()
	return err
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			if s.ctx.Err() == nil {
				s.log().Warn("resolver: reading a question", "device", s.Device, "err", err)
			}
			return
		}
		q := append([]byte(nil), buf[:n]...)
		client := from.(*net.UDPAddr).IP
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if out := s.answer(q, client, "udp"); out != nil {
				_, _ = s.udp.WriteTo(out, from)
			}
		}()
	}
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			stop := context.AfterFunc(s.ctx, func() { c.Close() })
			defer stop()
			client := c.RemoteAddr().(*net.TCPAddr).IP
			for {
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				q, err := readTCP(c)
				if err != nil {
					return
				}
				out := s.answer(q, client, "tcp")
				if out == nil || writeTCP(c, out) != nil {
					return
				}
			}
		}()
	}
}

func readTCP(r io.Reader) ([]byte, error) {
	var n uint16
	if err := binary.Read(r, binary.BigEndian, &n); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

func writeTCP(w io.Writer, msg []byte) error {
	b := make([]byte, 2, 2+len(msg))
	binary.BigEndian.PutUint16(b, uint16(len(msg)))
	_, err := w.Write(append(b, msg...))
	return err
}

// answer is the reply to the raw question q from client (nil: none).
func (s *Server) answer(q []byte, client net.IP, proto string) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil // not a question: no reply, as to noise
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return reply(h, nil, dnsmessage.RCodeFormatError, nil)
	}
	if h.OpCode != 0 || len(qs) != 1 {
		return reply(h, qs, dnsmessage.RCodeNotImplemented, nil)
	}
	question := qs[0]
	name := strings.ToLower(strings.TrimSuffix(question.Name.String(), "."))
	ips, member := s.Lookup(client, name)
	if !member {
		// Only the network's containers may ask: a packet that came in
		// on the bridge from an address no container there has is
		// someone else's.
		return reply(h, qs, dnsmessage.RCodeRefused, nil)
	}
	if len(ips) > 0 && question.Class == dnsmessage.ClassINET {
		var rrs []dnsmessage.Resource
		if question.Type == dnsmessage.TypeA || question.Type == dnsmessage.TypeALL {
			for _, ip := range ips {
				var a dnsmessage.AResource
				copy(a.A[:], ip.To4())
				rrs = append(rrs, dnsmessage.Resource{
					Header: dnsmessage.ResourceHeader{Name: question.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: TTL},
					Body:   &a,
				})
			}
		}
		// Other types of a container's name: it has none (no error, so
		// the client takes the A answer).
		return reply(h, qs, dnsmessage.RCodeSuccess, rrs)
	}
	out, err := s.forward(q, proto)
	if err != nil {
		s.log().Debug("resolver: forwarding", "device", s.Device, "name", name, "err", err)
		return reply(h, qs, dnsmessage.RCodeServerFailure, nil)
	}
	return out
}

// reply builds an answer to h's question with rcode and rrs.
func reply(h dnsmessage.Header, qs []dnsmessage.Question, rcode dnsmessage.RCode, rrs []dnsmessage.Resource) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired, RecursionAvailable: true,
		Authoritative: rcode == dnsmessage.RCodeSuccess && len(rrs) > 0, RCode: rcode,
	})
	b.EnableCompression()
	_ = b.StartQuestions()
	for _, q := range qs {
		_ = b.Question(q)
	}
	_ = b.StartAnswers()
	for _, rr := range rrs {
		_ = b.AResource(rr.Header, *rr.Body.(*dnsmessage.AResource))
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// forward asks the upstreams in turn, each from a fresh socket (a random
// source port), and returns the first answer whose ID is the question's.
func (s *Server) forward(q []byte, proto string) ([]byte, error) {
	var ups []string
	if s.Upstreams != nil {
		ups = s.Upstreams()
	}
	if len(ups) == 0 {
		return nil, errors.New("no upstream resolvers")
	}
	var errs []error
	for _, up := range ups {
		out, err := exchange(s.ctx, q, up, proto)
		if err == nil {
			return out, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", up, err))
	}
	return nil, errors.Join(errs...)
}

func exchange(ctx context.Context, q []byte, upstream, proto string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, proto, upstream)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)
	if proto == "tcp" {
		if err := writeTCP(c, q); err != nil {
			return nil, err
		}
		return readTCP(c)
	}
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		// A reply with another ID is not ours (or is forged): wait on.
		if n >= 2 && binary.BigEndian.Uint16(buf) == binary.BigEndian.Uint16(q) {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}
