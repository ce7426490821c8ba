// Package nettest has what network tests share: a network manager with the
// default bridge (Manager) and a stand-in for the host's resolver
// (FakeUpstream), for tests that run in a network namespace of their own
// (testimg.InNetns).
package nettest
