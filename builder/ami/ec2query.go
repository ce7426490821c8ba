package ami

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
)

// EC2 is the EC2 Query API: an action with its form parameters, the XML
// response decoded into out (nil: ignored).
//
// It is a client of our own (queryClient) rather than the SDK's ec2
// package: the five actions an AMI needs are a few form fields each, and
// the SDK's ec2 package alone made the stripped builder binary 49 MB
// instead of 17.6 MB (11 MB before any AWS code) and its first build most
// of a minute longer. Requests are still signed by the SDK's SigV4 signer,
// with the SDK's credentials chain and its retryer.
type EC2 interface {
	Call(ctx context.Context, action string, params url.Values, out any) error
}

// ec2APIVersion is the Query API version every action is sent with.
const ec2APIVersion = "2016-11-15"

// maxResponse bounds a response body read into memory.
const maxResponse = 16 << 20

// queryClient signs and sends Query API calls, retrying as its retryer says.
type queryClient struct {
	endpoint string // scheme://host, no path
	region   string
	creds    aws.CredentialsProvider
	http     aws.HTTPClient
	retryer  aws.Retryer
	signer   *v4.Signer
}

// ec2Endpoint is EC2's regional endpoint, or base when one is configured
// (AWS_ENDPOINT_URL, tests).
func ec2Endpoint(base, region string) string {
	if base != "" {
		return strings.TrimSuffix(base, "/")
	}
	if strings.HasPrefix(region, "cn-") {
		return "https://ec2." + region + ".amazonaws.com.cn"
	}
	return "https://ec2." + region + ".amazonaws.com"
}

// QueryError is an error response of the Query API.
type QueryError struct {
	Action    string
	Status    int
	Code      string
	Message   string
	RequestID string
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("%s: %s: %s (HTTP %d, request %s)", e.Action, e.Code, e.Message, e.Status, e.RequestID)
}

// ErrorCode, ErrorMessage, ErrorFault and HTTPStatusCode let the SDK's
// retryer classify the error (throttling, server error) like its own.
func (e *QueryError) ErrorCode() string    { return e.Code }
func (e *QueryError) ErrorMessage() string { return e.Message }
func (e *QueryError) HTTPStatusCode() int  { return e.Status }
func (e *QueryError) ErrorFault() smithy.ErrorFault {
	if e.Status >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

type queryErrorBody struct {
	Errors []struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Errors>Error"`
	RequestID string `xml:"RequestID"`
}

func (c *queryClient) Call(ctx context.Context, action string, params url.Values, out any) error {
	form := url.Values{}
	for k, v := range params {
		form[k] = v
	}
	form.Set("Action", action)
	form.Set("Version", ec2APIVersion)
	body := []byte(form.Encode())
	sum := sha256.Sum256(body)
	for attempt := 1; ; attempt++ {
		err := c.send(ctx, action, body, hex.EncodeToString(sum[:]), out)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || attempt >= c.retryer.MaxAttempts() || !c.retryer.IsErrorRetryable(err) {
			return err
		}
		delay, derr := c.retryer.RetryDelay(attempt, err)
		if derr != nil {
			return err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// send makes one signed attempt.
func (c *queryClient) send(ctx context.Context, action string, body []byte, payloadHash string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("EC2 %s: %w", action, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("EC2 %s: AWS credentials: %w", action, err)
	}
	if err := c.signer.SignHTTP(ctx, creds, req, payloadHash, "ec2", c.region, time.Now().UTC()); err != nil {
		return fmt.Errorf("EC2 %s: signing: %w", action, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("EC2 %s in %s: %w", action, c.region, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("EC2 %s in %s: reading the response: %w", action, c.region, err)
	}
	if resp.StatusCode == http.StatusOK {
		if out == nil {
			return nil
		}
		if err := xml.Unmarshal(data, out); err != nil {
			return fmt.Errorf("EC2 %s in %s: decoding the response: %w", action, c.region, err)
		}
		return nil
	}
	qe := &QueryError{Action: action, Status: resp.StatusCode, Code: http.StatusText(resp.StatusCode)}
	var eb queryErrorBody
	if xml.Unmarshal(data, &eb) == nil && len(eb.Errors) > 0 {
		qe.Code, qe.Message, qe.RequestID = eb.Errors[0].Code, eb.Errors[0].Message, eb.RequestID
	}
	return qe
}

// The parts of the Query API's responses that are read.
type (
	ec2Image struct {
		ImageID        string `xml:"imageId"`
		Name           string `xml:"name"`
		State          string `xml:"imageState"`
		RootDeviceName string `xml:"rootDeviceName"`
		BlockDevices   []struct {
			DeviceName string `xml:"deviceName"`
			SnapshotID string `xml:"ebs>snapshotId"`
		} `xml:"blockDeviceMapping>item"`
	}
	describeImagesResponse struct {
		Images []ec2Image `xml:"imagesSet>item"`
	}
	describeSnapshotsResponse struct {
		Snapshots []struct {
			SnapshotID   string `xml:"snapshotId"`
			Status       string `xml:"status"`
			StateMessage string `xml:"statusMessage"`
		} `xml:"snapshotSet>item"`
	}
	imageIDResponse struct {
		ImageID string `xml:"imageId"`
	}
)
