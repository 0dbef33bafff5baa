"""TEST DOUBLE of OpenNebula's oned XML-RPC API (not oned); see README.md."""
