package tcp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the TCP workload: run with TELAGENT_TCP_HELPER
// set (inside a network namespace, through `ip netns exec`), TestMain runs
// runHelper instead of the tests. The helper prints "pid N", waits for a
// line on stdin before touching any socket (so the test can make it a
// target first), prints "ready" once it listens or is done, and exits when
// stdin closes: its sockets are closed by then, and it stays alive until
// the test collected.
func TestMain(m *testing.M) {
	if role := os.Getenv("TELAGENT_TCP_HELPER"); role != "" {
		if err := runHelper(role, os.Getenv("TELAGENT_TCP_ADDR"), os.Getenv("TELAGENT_TCP_MODE"), os.Getenv("TELAGENT_TCP_N"), os.Getenv("TELAGENT_TCP_BYTES")); err != nil {
			fmt.Fprintf(os.Stderr, "tcp helper %s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runHelper(role, addr, mode, nArg, bytesArg string) error {
	n, err := strconv.Atoi(nArg)
	if err != nil {
		return fmt.Errorf("TELAGENT_TCP_N: %w", err)
	}
	size, _ := strconv.Atoi(bytesArg)
	in := bufio.NewReader(os.Stdin)
	fmt.Printf("pid %d\n", os.Getpid())
	if _, err := in.ReadString('\n'); err != nil {
		return fmt.Errorf("wait for go: %w", err)
	}
	switch role {
	case "server":
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			return err
		}
		fmt.Println("ready")
		for range n {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			if err := serve(c.(*net.TCPConn), mode); err != nil {
				return err
			}
		}
		if err := ln.Close(); err != nil {
			return err
		}
	case "client":
		// The kernel's smoothed RTT of each connection after its exchange
		// (TCP_INFO tcpi_rtt, µs): the range is reported with "ready".
		minRTT, maxRTT := uint32(math.MaxUint32), uint32(0)
		for range n {
			rtt, err := request(addr, mode, size)
			if err != nil {
				return err
			}
			minRTT, maxRTT = min(minRTT, rtt), max(maxRTT, rtt)
		}
		fmt.Printf("ready %d %d\n", minRTT, maxRTT)
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	_, _ = io.Copy(io.Discard, in) // until the test closes stdin
	return nil
}

// serve handles one accepted connection.
func serve(c *net.TCPConn, mode string) error {
	defer c.Close()
	switch mode {
	case "echo": // one byte in, one byte back, then wait for the client's FIN
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		if _, err := c.Write(b); err != nil {
			return err
		}
		_, err := io.Copy(io.Discard, c)
		return err
	case "sink": // read everything
		_, err := io.Copy(io.Discard, c)
		return err
	case "abort": // close with a reset (SO_LINGER 0)
		if err := c.SetLinger(0); err != nil {
			return err
		}
		return nil
	}
	return fmt.Errorf("unknown server mode %q", mode)
}

// request is one client connection; for sink mode n is the bytes to send.
// It returns the connection's smoothed RTT (µs) in echo mode.
func request(addr, mode string, n int) (uint32, error) {
	switch mode {
	case "refused": // connect to a port nobody listens on
		c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
		if err == nil {
			c.Close()
			return 0, errors.New("connect to a closed port succeeded")
		}
		return 0, nil
	}
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if mode == "reset" && errors.Is(err, unix.ECONNRESET) {
		// The reset came before the dial saw the connection established.
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	tc := c.(*net.TCPConn)
	defer tc.Close()
	switch mode {
	case "echo":
		b := []byte{42}
		if _, err := tc.Write(b); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(tc, b); err != nil {
			return 0, err
		}
		return tcpRTT(tc)
	case "sink": // send size bytes, then wait for the server's close
		if _, err := tc.Write(make([]byte, n)); err != nil {
			return 0, err
		}
		if err := tc.CloseWrite(); err != nil {
			return 0, err
		}
		_, err := io.Copy(io.Discard, tc)
		return 0, err
	case "reset": // wait for the server's reset
		_, err := tc.Read(make([]byte, 1))
		if err == nil {
			return 0, errors.New("read succeeded, want a reset")
		}
		return 0, nil
	}
	return 0, fmt.Errorf("unknown client mode %q", mode)
}

// tcpRTT is the kernel's smoothed RTT of c in µs (srtt_us >> 3).
func tcpRTT(c *net.TCPConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var info *unix.TCPInfo
	var serr error
	if err := raw.Control(func(fd uintptr) { info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("TCP_INFO: %w", serr)
	}
	return info.Rtt, nil
}
