// Command tlogcheck audits a custody log with Go's reference transparency-log
// packages (golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog), not
// with any of the project's own code.
//
// It reads the log over HTTPS through the C2SP tlog-tiles API and checks:
//
//   - the checkpoint verifies under note.Open with the log's vkey, its origin
//     line is the log key's name, and a copy with one byte changed is refused;
//   - the witness's cosignature/v1 line (C2SP tlog-cosignature) verifies, by a
//     note.Verifier written here from the specification;
//   - every hash tile read through tlog.TileHashReader authenticates against the
//     checkpoint's root, and the tree hash equals it;
//   - every entry in the entry bundles has an inclusion proof (tlog.ProveRecord)
//     that tlog.CheckRecord accepts, and the service's own inclusion proofs for
//     it are the same hashes;
//   - the service's consistency proofs from every older size verify under
//     tlog.CheckTree;
//   - a C2SP tlog-proof file verifies: its checkpoint under note.Open, its
//     inclusion proof under tlog.CheckRecord for the given leaf.
//
// Usage:
//
//	tlogcheck -url https://127.0.0.1:PORT -ca ca.pem -vkey VKEY \
//	    -witness NAME+HEX_PUBKEY -proof entry.tlog-proof -leaf entry.leaf
//
// It prints one "ok ..." line per check and exits 1 at the first failure.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// tileHeight is the C2SP tlog-tiles height: 256 hashes per full tile.
const tileHeight = 8

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

// cosigV1 verifies C2SP tlog-cosignature lines (signature type 0x04): the
// signature is an 8-byte big-endian timestamp followed by an Ed25519
// signature over "cosignature/v1\ntime <t>\n" + the checkpoint text.
type cosigV1 struct {
	name string
	pub  ed25519.PublicKey
	hash uint32
}

func newCosigV1(name string, pub []byte) *cosigV1 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', 0x04})
	h.Write(pub)
	sum := h.Sum(nil)
	return &cosigV1{name, ed25519.PublicKey(pub), binary.BigEndian.Uint32(sum[:4])}
}

func (v *cosigV1) Name() string    { return v.name }
func (v *cosigV1) KeyHash() uint32 { return v.hash }
func (v *cosigV1) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	signed := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), msg...)
	return ed25519.Verify(v.pub, signed, sig[8:])
}

type server struct {
	base   string
	client *http.Client
	reads  int
}

func (s *server) get(path string) []byte {
	resp, err := s.client.Get(s.base + path)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		fail("GET %s: status %d: %s", path, resp.StatusCode, body)
	}
	s.reads++
	return body
}

// c2spPath is the tlog-tiles path of t: Go's sumdb layout without the height
// segment, and "entries" for the data tiles.
func c2spPath(t tlog.Tile) string {
	p := t.Path() // tile/8/<L>/<N>[.p/<W>] or tile/8/data/<N>[.p/<W>]
	p = strings.TrimPrefix(p, fmt.Sprintf("tile/%d/", tileHeight))
	p = strings.Replace(p, "data/", "entries/", 1)
	return "/tile/" + p
}

// tileReader serves tlog.TileHashReader from the log's hash tiles.
type tileReader struct{ s *server }

func (r tileReader) Height() int { return tileHeight }
func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		out[i] = r.s.get(c2spPath(t))
	}
	return out, nil
}
func (r tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// checkpoint is the body of a C2SP tlog-checkpoint.
type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func parseCheckpoint(text string) checkpoint {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		fail("checkpoint body is not origin, size, root: %q", text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		fail("checkpoint size %q", lines[1])
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		fail("checkpoint root %q: %v", lines[2], err)
	}
	return checkpoint{lines[0], size, root}
}

func hashes(text []byte, what string) []tlog.Hash {
	var out []tlog.Hash
	for _, line := range strings.Split(strings.TrimSuffix(string(text), "\n"), "\n") {
		if line == "" {
			continue
		}
		h, err := tlog.ParseHash(line)
		if err != nil {
			fail("%s: %v", what, err)
		}
		out = append(out, h)
	}
	return out
}

// bundle splits a tlog-tiles entry bundle: big-endian uint16 length prefixes.
func bundle(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			fail("entry bundle: truncated length")
		}
		n := int(binary.BigEndian.Uint16(data[:2]))
		if len(data) < 2+n {
			fail("entry bundle: truncated entry")
		}
		out = append(out, data[2:2+n])
		data = data[2+n:]
	}
	return out
}

func same(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func main() {
	base := flag.String("url", "", "log service base URL")
	caFile := flag.String("ca", "", "PEM CA of the log service")
	vkey := flag.String("vkey", "", "the log's note verifier key")
	witness := flag.String("witness", "", "witness NAME+HEX_ED25519_PUBKEY")
	proofFile := flag.String("proof", "", "a C2SP tlog-proof file")
	leafFile := flag.String("leaf", "", "the leaf the tlog-proof is for")
	flag.Parse()

	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fail("read CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fail("no certificate in %s", *caFile)
	}
	s := &server{base: strings.TrimSuffix(*base, "/"), client: &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}

	logV, err := note.NewVerifier(*vkey)
	if err != nil {
		fail("log vkey: %v", err)
	}
	name, pubHex, ok := strings.Cut(*witness, "+")
	pub, herr := hex.DecodeString(pubHex)
	if !ok || herr != nil || len(pub) != ed25519.PublicKeySize {
		fail("-witness must be NAME+HEX_ED25519_PUBKEY")
	}
	witV := newCosigV1(name, pub)
	verifiers := note.VerifierList(logV, witV)

	// The checkpoint, its signatures and a one-byte change.
	raw := s.get("/checkpoint")
	n, err := note.Open(raw, verifiers)
	if err != nil {
		fail("note.Open(checkpoint): %v", err)
	}
	signers := map[string]bool{}
	for _, sig := range n.Sigs {
		signers[sig.Name] = true
	}
	if !signers[logV.Name()] || !signers[witV.Name()] {
		fail("checkpoint verified signers %v, want the log and the witness", signers)
	}
	fmt.Printf("ok note.Open: log signature and %s cosignature verify\n", witV.Name())
	cp := parseCheckpoint(n.Text)
	if cp.origin != logV.Name() {
		fail("origin %q is not the log key's name %q", cp.origin, logV.Name())
	}
	fmt.Printf("ok origin line is the key name %q\n", cp.origin)
	for _, i := range []int{0, len(n.Text) / 2, len(n.Text) - 2} {
		bad := append([]byte(nil), raw...)
		bad[i] ^= 0x01
		if _, err := note.Open(bad, verifiers); err == nil {
			fail("a checkpoint with byte %d changed still verified", i)
		}
	}
	fmt.Println("ok changed checkpoints are refused")

	// Hash tiles, authenticated against the checkpoint root.
	tree := tlog.Tree{N: cp.size, Hash: cp.root}
	hr := tlog.TileHashReader(tree, tileReader{s})
	th, err := tlog.TreeHash(cp.size, hr)
	if err != nil || th != cp.root {
		fail("tree hash from tiles: %v %v, checkpoint %v", th, err, cp.root)
	}
	fmt.Printf("ok tree hash of %d entries from the hash tiles equals the root\n",
		cp.size)

	// Every entry: bundle -> record hash -> proof checked against the root.
	var index int64
	for index < cp.size {
		width := cp.size - index
		if width > 1<<tileHeight {
			width = 1 << tileHeight
		}
		t := tlog.Tile{H: tileHeight, L: -1, N: index >> tileHeight, W: int(width)}
		entries := bundle(s.get(c2spPath(t)))
		if len(entries) != t.W {
			fail("entry bundle %s holds %d entries, want %d", c2spPath(t),
				len(entries), t.W)
		}
		for _, data := range entries {
			h := tlog.RecordHash(data)
			p, err := tlog.ProveRecord(cp.size, index, hr)
			if err != nil {
				fail("ProveRecord(%d): %v", index, err)
			}
			if err := tlog.CheckRecord(p, cp.size, cp.root, index, h); err != nil {
				fail("CheckRecord(%d): %v", index, err)
			}
			served := hashes(s.get(fmt.Sprintf("/v1/proof/inclusion?index=%d&size=%d",
				index, cp.size)), "inclusion proof")
			if !same(served, p) {
				fail("the service's inclusion proof for %d differs from tlog's", index)
			}
			index++
		}
	}
	fmt.Printf("ok %d entries from the entry bundles are included (CheckRecord)\n",
		index)

	// Consistency proofs served by the log, from every older size.
	for old := int64(1); old < cp.size; old++ {
		p := hashes(s.get(fmt.Sprintf("/v1/proof/consistency?old=%d&new=%d", old,
			cp.size)), "consistency proof")
		oldHash, err := tlog.TreeHash(old, hr)
		if err != nil {
			fail("TreeHash(%d): %v", old, err)
		}
		if err := tlog.CheckTree(p, cp.size, cp.root, old, oldHash); err != nil {
			fail("CheckTree(%d -> %d): %v", old, cp.size, err)
		}
	}
	fmt.Printf("ok the service's consistency proofs from sizes 1..%d verify "+
		"(CheckTree)\n", cp.size-1)

	// An offline C2SP tlog-proof file.
	text, err := os.ReadFile(*proofFile)
	if err != nil {
		fail("read proof: %v", err)
	}
	leaf, err := os.ReadFile(*leafFile)
	if err != nil {
		fail("read leaf: %v", err)
	}
	head, signed, found := bytes.Cut(text, []byte("\n\n"))
	if !found {
		fail("tlog-proof: no blank line before the checkpoint")
	}
	lines := strings.Split(string(head), "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		fail("tlog-proof header %q", lines[0])
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		if _, err := base64.StdEncoding.DecodeString(lines[0][6:]); err != nil {
			fail("tlog-proof extra: %v", err)
		}
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		fail("tlog-proof: no index line")
	}
	at, err := strconv.ParseInt(lines[0][6:], 10, 64)
	if err != nil {
		fail("tlog-proof index: %v", err)
	}
	proof := hashes([]byte(strings.Join(lines[1:], "\n")), "tlog-proof hashes")
	pn, err := note.Open(signed, verifiers)
	if err != nil {
		fail("note.Open(tlog-proof checkpoint): %v", err)
	}
	pcp := parseCheckpoint(pn.Text)
	if err := tlog.CheckRecord(proof, pcp.size, pcp.root, at,
		tlog.RecordHash(leaf)); err != nil {
		fail("tlog-proof CheckRecord(%d): %v", at, err)
	}
	if err := tlog.CheckRecord(proof, pcp.size, pcp.root, at,
		tlog.RecordHash(append(append([]byte(nil), leaf...), ' '))); err == nil {
		fail("tlog-proof accepted a changed leaf")
	}
	fmt.Printf("ok tlog-proof for entry %d verifies (note.Open, CheckRecord); "+
		"a changed leaf is refused\n", at)
	fmt.Printf("ok %d reads over HTTPS\n", s.reads)
}
