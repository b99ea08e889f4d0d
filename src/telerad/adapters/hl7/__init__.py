"""HL7 v2: acknowledgements (ack), MLLP framing and listener (mllp), the receiver (receive)."""
