-- The C TC3 signer against every published TC3-HMAC-SHA256 vector (spec/data/tc3-signature-test-vectors.json),
-- checked stage by stage so a failure names the stage that went wrong.
local core = require("essbasic.core")

local function read_vectors()
  local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec"
  local f = assert(io.open(dir .. "/data/tc3-signature-test-vectors.json", "rb"))
  local text = f:read("*a")
  f:close()
  return assert(core.json_decode(text))
end

local data = read_vectors()

-- Which input of a vector supplies each header it signs.
local header_inputs = { ["content-type"] = "content_type", host = "host", ["x-tc-action"] = "action" }

local function split(s, sep)
  local out = {}
  for part in s:gmatch("[^" .. sep .. "]+") do out[#out + 1] = part end
  return out
end

-- The flat, sorted {name, value, ...} list of the headers the vector signs, values exactly as sent.
local function signed_header_list(vector)
  local list = {}
  for _, name in ipairs(split(vector.expected.signed_headers, ";")) do
    local field = assert(header_inputs[name], "no input for header " .. name)
    list[#list + 1] = name
    list[#list + 1] = assert(vector.inputs[field])
  end
  return list
end

describe("TC3 test vectors", function()
  it("are all present", function()
    assert.equal(4, #data.vectors)
    assert.equal(core.sha256_hex(""), data.empty_payload_sha256)
  end)

  for _, vector in ipairs(data.vectors) do
    describe(vector.name, function()
      local inputs, expected = vector.inputs, vector.expected
      local signer, signature, signed_headers, scope, trace

      setup(function()
        signer = core.tc3_signer(inputs.secret_key)
        signature, signed_headers, scope, trace = signer:sign(inputs.timestamp, inputs.service, inputs.http_method,
          inputs.canonical_query_string, signed_header_list(vector), inputs.payload, true)
      end)
      teardown(function() signer:close() end)

      it("hashes the payload", function()
        assert.equal(expected.hashed_request_payload, trace.hashed_request_payload)
        assert.equal(expected.hashed_request_payload, core.sha256_hex(inputs.payload))
      end)

      it("builds the canonical request (headers and signed headers)", function()
        assert.equal(expected.signed_headers, signed_headers)
        -- the vector's own canonical_headers sit where the layout puts them
        assert.equal(inputs.http_method .. "\n" .. inputs.canonical_uri .. "\n" .. inputs.canonical_query_string .. "\n"
          .. expected.canonical_headers .. "\n" .. expected.signed_headers .. "\n" .. expected.hashed_request_payload,
          expected.canonical_request)
        assert.equal(expected.canonical_request, trace.canonical_request)
      end)

      it("hashes the canonical request", function()
        assert.equal(expected.hashed_canonical_request, trace.hashed_canonical_request)
      end)

      it("builds the credential scope and the string to sign", function()
        assert.equal(expected.credential_scope, scope)
        assert.equal(expected.date .. "/" .. inputs.service .. "/tc3_request", scope)
        assert.equal(expected.string_to_sign, trace.string_to_sign)
      end)

      it("derives the date, service and signing keys", function()
        assert.equal(expected.secret_date_hex, trace.secret_date_hex)
        assert.equal(expected.secret_service_hex, trace.secret_service_hex)
        assert.equal(expected.secret_signing_hex, trace.secret_signing_hex)
      end)

      it("signs", function()
        assert.equal(expected.signature, signature)
        -- the cached signing key gives the same signature, with and without trace
        assert.equal(expected.signature, (signer:sign(inputs.timestamp, inputs.service, inputs.http_method,
          inputs.canonical_query_string, signed_header_list(vector), inputs.payload)))
      end)

      it("gives the published Authorization header", function()
        assert.equal(expected.authorization, "TC3-HMAC-SHA256 Credential=" .. inputs.secret_id .. "/" .. scope
          .. ", SignedHeaders=" .. signed_headers .. ", Signature=" .. signature)
      end)
    end)
  end
end)
