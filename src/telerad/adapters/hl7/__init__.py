"""HL7 v2: acknowledgements (ack), MLLP framing and listener (mllp), the receiver (receive).

Orders and ADT are read into commands (orders) and applied through the order service
(handling).
"""
