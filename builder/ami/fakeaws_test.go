package ami

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// fakeAWS is an httptest server that speaks the two APIs as AWS documents
// them: the EBS direct APIs (REST, JSON bodies, x-amz-* headers, errors in
// X-Amzn-ErrorType) and the EC2 Query API (form-encoded Action=...,
// XML responses, errors in <Response><Errors>). Every request's SigV4
// signature is recomputed with the SDK's own signer and compared; a
// mismatch is a 403 and a test failure.
type fakeAWS struct {
	t     *testing.T
	srv   *httptest.Server
	creds aws.Credentials

	mu        sync.Mutex
	snaps     map[string]*fakeSnap
	images    map[string]*fakeImage
	calls     []fakeCall
	signed    int // requests whose signature matched
	next      int
	accountID string
	// inject, when set, may answer a request with an error instead.
	inject func(c fakeCall) *fakeErr
}

type fakeCall struct {
	Service, Region, Op string
	Block               int32 // PutSnapshotBlock's index
	Form                url.Values
}

type fakeErr struct {
	Status        int
	Code, Message string
	Reason        string // EBS ValidationException's reason
}

type fakeSnap struct {
	ID, Region   string
	VolumeSize   int64
	Tags         map[string]string
	Status       string
	Blocks       map[int32][]byte
	Sums         map[int32]string
	polls        int
	CompletedSum string
}

type fakeImage struct {
	ID, Region, Name, Snapshot string
	Params                     url.Values
	State                      string
	Shared                     []string
	polls                      int
}

func newFakeAWS(t *testing.T) *fakeAWS {
	f := &fakeAWS{t: t, creds: aws.Credentials{AccessKeyID: "AKIDBULKHEADTEST", SecretAccessKey: "s3cr3t/key+for+tests"},
		snaps: map[string]*fakeSnap{}, images: map[string]*fakeImage{}, accountID: "111122223333"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// clients are the SDK's real clients pointed at the server, with fast
// retries.
func (f *fakeAWS) clients() SDKClients {
	return SDKClients{Config: aws.Config{
		Region:       "us-east-1",
		Credentials:  aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return f.creds, nil }),
		BaseEndpoint: aws.String(f.srv.URL),
		HTTPClient:   f.srv.Client(),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 4
				o.RateLimiter = ratelimit.None
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
			})
		},
	}}
}

var authRe = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$`)

// checkSignature recomputes the request's SigV4 signature with the SDK's
// signer from the headers it says it signed, and returns the scope's
// service and region.
func (f *fakeAWS) checkSignature(r *http.Request, body []byte) (service, region string, err error) {
	auth := r.Header.Get("Authorization")
	m := authRe.FindStringSubmatch(auth)
	if m == nil {
		return "", "", fmt.Errorf("authorization header %q", auth)
	}
	if m[1] != f.creds.AccessKeyID {
		return "", "", fmt.Errorf("access key %q", m[1])
	}
	service, region = m[4], m[3]
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || when.Format("20060102") != m[2] {
		return "", "", fmt.Errorf("x-amz-date %q for scope date %s", r.Header.Get("X-Amz-Date"), m[2])
	}
	sum := sha256.Sum256(body)
	bodyHash := hex.EncodeToString(sum[:])
	payload := r.Header.Get("X-Amz-Content-Sha256")
	switch {
	case payload == "":
		payload = bodyHash
	case payload == bodyHash:
	case payload == "UNSIGNED-PAYLOAD" && r.Method == http.MethodPut && blockPath.MatchString(r.URL.Path):
		// PutSnapshotBlock's body is not signed (the API model says so);
		// its x-amz-Checksum, checked below, covers it.
	default:
		return "", "", fmt.Errorf("x-amz-content-sha256 %s, body hashes to %s", payload, bodyHash)
	}
	req, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	req.ContentLength = r.ContentLength
	signed := strings.Split(m[5], ";")
	for _, h := range signed {
		if h == "host" || h == "content-length" || h == "x-amz-date" {
			continue
		}
		req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), f.creds, req, payload, service, region, when); err != nil {
		return "", "", err
	}
	if got := req.Header.Get("Authorization"); got != auth {
		return "", "", fmt.Errorf("signature mismatch:\n got  %s\n want %s", auth, got)
	}
	return service, region, nil
}

func (f *fakeAWS) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	service, region, err := f.checkSignature(r, body)
	if err != nil {
		f.t.Errorf("%s %s: %v", r.Method, r.URL.Path, err)
		w.Header().Set("X-Amzn-ErrorType", "InvalidSignatureException")
		w.WriteHeader(403)
		fmt.Fprintf(w, `{"message":%q}`, err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signed++
	switch service {
	case "ebs":
		f.serveEBS(w, r, region, body)
	case "ec2":
		form, err := url.ParseQuery(string(body))
		if err != nil || r.Method != http.MethodPost || r.URL.Path != "/" || form.Get("Version") != "2016-11-15" {
			f.t.Errorf("EC2 request %s %s %q: not a Query API call", r.Method, r.URL.Path, body)
			ec2Error(w, &fakeErr{Status: 400, Code: "InvalidAction", Message: "not a query"})
			return
		}
		f.serveEC2(w, region, form)
	default:
		f.t.Errorf("request for service %q", service)
		w.WriteHeader(400)
	}
}

func ebsError(w http.ResponseWriter, e *fakeErr) {
	w.Header().Set("X-Amzn-ErrorType", e.Code)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	b, _ := json.Marshal(map[string]string{"Message": e.Message, "Reason": e.Reason})
	w.Write(b)
}

var (
	blockPath    = regexp.MustCompile(`^/snapshots/([^/]+)/blocks/(\d+)$`)
	completePath = regexp.MustCompile(`^/snapshots/completion/([^/]+)$`)
)

func (f *fakeAWS) serveEBS(w http.ResponseWriter, r *http.Request, region string, body []byte) {
	call := fakeCall{Service: "ebs", Region: region, Block: -1}
	var snapID string
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/snapshots":
		call.Op = "StartSnapshot"
	case r.Method == http.MethodPut && blockPath.MatchString(r.URL.Path):
		m := blockPath.FindStringSubmatch(r.URL.Path)
		call.Op, snapID = "PutSnapshotBlock", m[1]
		i, _ := strconv.Atoi(m[2])
		call.Block = int32(i)
	case r.Method == http.MethodPost && completePath.MatchString(r.URL.Path):
		call.Op, snapID = "CompleteSnapshot", completePath.FindStringSubmatch(r.URL.Path)[1]
	default:
		f.t.Errorf("EBS: unexpected %s %s", r.Method, r.URL.Path)
		ebsError(w, &fakeErr{Status: 404, Code: "UnknownOperationException"})
		return
	}
	f.calls = append(f.calls, call)
	if f.inject != nil {
		if e := f.inject(call); e != nil {
			ebsError(w, e)
			return
		}
	}
	if call.Op == "StartSnapshot" {
		var in struct {
			VolumeSize  int64
			Description string
			Timeout     int
			Tags        []struct{ Key, Value string }
		}
		if err := json.Unmarshal(body, &in); err != nil || in.VolumeSize < 1 {
			ebsError(w, &fakeErr{Status: 400, Code: "ValidationException", Reason: "INVALID_VOLUME_SIZE", Message: string(body)})
			return
		}
		f.next++
		s := &fakeSnap{ID: fmt.Sprintf("snap-%017x", f.next), Region: region, VolumeSize: in.VolumeSize, Status: "pending",
			Tags: map[string]string{}, Blocks: map[int32][]byte{}, Sums: map[int32]string{}}
		for _, t := range in.Tags {
			s.Tags[t.Key] = t.Value
		}
		f.snaps[s.ID] = s
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(map[string]any{"SnapshotId": s.ID, "OwnerId": f.accountID, "Status": "pending",
			"VolumeSize": s.VolumeSize, "BlockSize": BlockSize, "StartTime": time.Now().Unix(), "Tags": in.Tags, "Description": in.Description})
		return
	}
	s := f.snaps[snapID]
	if s == nil || s.Region != region {
		ebsError(w, &fakeErr{Status: 404, Code: "ResourceNotFoundException", Reason: "SNAPSHOT_NOT_FOUND", Message: "no snapshot " + snapID})
		return
	}
	if s.Status != "pending" {
		ebsError(w, &fakeErr{Status: 400, Code: "ValidationException", Reason: "INVALID_SNAPSHOT_ID", Message: "snapshot " + snapID + " is " + s.Status})
		return
	}
	if call.Op == "PutSnapshotBlock" {
		sum := sha256.Sum256(body)
		b64 := base64.StdEncoding.EncodeToString(sum[:])
		switch {
		case r.Header.Get("X-Amz-Data-Length") != strconv.Itoa(BlockSize) || len(body) != BlockSize:
			ebsError(w, &fakeErr{Status: 400, Code: "ValidationException", Reason: "INVALID_BLOCK", Message: "a block is 524288 bytes"})
		case int64(call.Block) >= s.VolumeSize<<30/BlockSize:
			ebsError(w, &fakeErr{Status: 400, Code: "ValidationException", Reason: "INVALID_BLOCK", Message: "block index past the volume"})
		case r.Header.Get("X-Amz-Checksum-Algorithm") != "SHA256" || r.Header.Get("X-Amz-Checksum") != b64:
			f.t.Errorf("block %d: checksum %s %s, data hashes to %s", call.Block, r.Header.Get("X-Amz-Checksum-Algorithm"), r.Header.Get("X-Amz-Checksum"), b64)
			ebsError(w, &fakeErr{Status: 400, Code: "ValidationException", Reason: "INVALID_CHECKSUM", Message: "checksum"})
		default:
			s.Blocks[call.Block] = body
			s.Sums[call.Block] = b64
			w.Header().Set("X-Amz-Checksum", b64)
			w.Header().Set("X-Amz-Checksum-Algorithm", "SHA256")
			w.WriteHeader(201)
		}
		return
	}
	// CompleteSnapshot: the count and the LINEAR aggregate of what arrived.
	idx := make([]int32, 0, len(s.Sums))
	for i := range s.Sums {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	agg := sha256.New()
	for _, i := range idx {
		raw, _ := base64.StdEncoding.DecodeString(s.Sums[i])
		agg.Write(raw)
	}
	want := base64.StdEncoding.EncodeToString(agg.Sum(nil))
	h := r.Header
	if h.Get("X-Amz-ChangedBlocksCount") != strconv.Itoa(len(idx)) || h.Get("X-Amz-Checksum") != want ||
		h.Get("X-Amz-Checksum-Algorithm") != "SHA256" || h.Get("X-Amz-Checksum-Aggregation-Method") != "LINEAR" {
		f.t.Errorf("CompleteSnapshot: count %s checksum %s %s %s, want %d %s SHA256 LINEAR", h.Get("X-Amz-ChangedBlocksCount"),
			h.Get("X-Amz-Checksum"), h.Get("X-Amz-Checksum-Algorithm"), h.Get("X-Amz-Checksum-Aggregation-Method"), len(idx), want)
		s.Status = "error"
		ebsError(w, &fakeErr{Status: 400, Code: "ValidationException", Reason: "INVALID_CHECKSUM", Message: "aggregate checksum"})
		return
	}
	s.Status, s.CompletedSum = "completing", want
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(202)
	w.Write([]byte(`{"Status":"pending"}`))
}

func ec2Error(w http.ResponseWriter, e *fakeErr) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.Status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>`, e.Code, xmlText(e.Message))
}

func xmlText(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func ec2Reply(w http.ResponseWriter, action, inner string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>11111111-2222-3333-4444-555555555555</requestId>%s</%sResponse>`, action, inner, action)
}

func (img *fakeImage) xml() string {
	return fmt.Sprintf(`<item><imageId>%s</imageId><name>%s</name><imageState>%s</imageState><imageOwnerId>111122223333</imageOwnerId>`+
		`<rootDeviceName>/dev/xvda</rootDeviceName><blockDeviceMapping><item><deviceName>/dev/xvda</deviceName><ebs><snapshotId>%s</snapshotId></ebs></item></blockDeviceMapping></item>`,
		img.ID, xmlText(img.Name), img.State, img.Snapshot)
}

func (f *fakeAWS) serveEC2(w http.ResponseWriter, region string, form url.Values) {
	call := fakeCall{Service: "ec2", Region: region, Op: form.Get("Action"), Block: -1, Form: form}
	f.calls = append(f.calls, call)
	if f.inject != nil {
		if e := f.inject(call); e != nil {
			ec2Error(w, e)
			return
		}
	}
	switch call.Op {
	case "DescribeImages":
		var items strings.Builder
		for _, img := range f.sortedImages() {
			if img.Region != region {
				continue
			}
			if id := form.Get("ImageId.1"); id != "" && id != img.ID {
				continue
			}
			if form.Get("Filter.1.Name") == "name" && form.Get("Filter.1.Value.1") != img.Name {
				continue
			}
			if form.Get("ImageId.1") != "" && img.State == "pending" {
				if img.polls++; img.polls > 1 {
					img.State = "available"
				}
			}
			items.WriteString(img.xml())
		}
		ec2Reply(w, call.Op, "<imagesSet>"+items.String()+"</imagesSet>")
	case "DescribeSnapshots":
		s := f.snaps[form.Get("SnapshotId.1")]
		if s == nil || s.Region != region {
			ec2Error(w, &fakeErr{Status: 400, Code: "InvalidSnapshot.NotFound", Message: "no snapshot " + form.Get("SnapshotId.1")})
			return
		}
		status := "pending"
		if s.Status == "completing" {
			if s.polls++; s.polls > 1 { // pending once, as a fresh snapshot is
				s.Status = "completed"
			}
		}
		if s.Status == "completed" || s.Status == "error" {
			status = s.Status
		}
		ec2Reply(w, call.Op, fmt.Sprintf(`<snapshotSet><item><snapshotId>%s</snapshotId><status>%s</status><volumeSize>%d</volumeSize><progress>100%%</progress></item></snapshotSet>`,
			s.ID, status, s.VolumeSize))
	case "RegisterImage":
		snap := f.snaps[form.Get("BlockDeviceMapping.1.Ebs.SnapshotId")]
		if snap == nil || snap.Status != "completed" || snap.Region != region {
			ec2Error(w, &fakeErr{Status: 400, Code: "InvalidSnapshot.NotFound", Message: "no completed snapshot " + form.Get("BlockDeviceMapping.1.Ebs.SnapshotId")})
			return
		}
		f.next++
		img := &fakeImage{ID: fmt.Sprintf("ami-%017x", f.next), Region: region, Name: form.Get("Name"), Snapshot: snap.ID, Params: form, State: "pending"}
		f.images[img.ID] = img
		ec2Reply(w, call.Op, "<imageId>"+img.ID+"</imageId>")
	case "CopyImage":
		src := f.images[form.Get("SourceImageId")]
		if src == nil || src.Region != form.Get("SourceRegion") {
			ec2Error(w, &fakeErr{Status: 400, Code: "InvalidAMIID.NotFound", Message: "no image " + form.Get("SourceImageId")})
			return
		}
		f.next++
		img := &fakeImage{ID: fmt.Sprintf("ami-%017x", f.next), Region: region, Name: form.Get("Name"), Snapshot: fmt.Sprintf("snap-copy%d", f.next), Params: form, State: "pending"}
		f.images[img.ID] = img
		ec2Reply(w, call.Op, "<imageId>"+img.ID+"</imageId>")
	case "ModifyImageAttribute":
		img := f.images[form.Get("ImageId")]
		if img == nil || img.Region != region || img.State != "available" {
			ec2Error(w, &fakeErr{Status: 400, Code: "InvalidAMIID.Unavailable", Message: "no available image " + form.Get("ImageId")})
			return
		}
		for i := 1; form.Has(fmt.Sprintf("LaunchPermission.Add.%d.UserId", i)); i++ {
			img.Shared = append(img.Shared, form.Get(fmt.Sprintf("LaunchPermission.Add.%d.UserId", i)))
		}
		ec2Reply(w, call.Op, "<return>true</return>")
	default:
		f.t.Errorf("EC2: unexpected action %q", call.Op)
		ec2Error(w, &fakeErr{Status: 400, Code: "InvalidAction", Message: call.Op})
	}
}

func (f *fakeAWS) sortedImages() []*fakeImage {
	var out []*fakeImage
	for _, img := range f.images {
		out = append(out, img)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// ops counts the calls of op (and of block, when >= 0).
func (f *fakeAWS) ops(op string, block int32) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c.Op == op && (block < 0 || c.Block == block) {
			n++
		}
	}
	return n
}
