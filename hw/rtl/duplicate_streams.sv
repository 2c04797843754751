// Stream duplication: one AXI-Stream in, NUM_OUTPUTS identical AXI-Streams out.
//
// Every input beat is delivered once on every output. The outputs may stall independently: a beat
// stays valid on an output until that output has taken it, and the next input beat is accepted
// only in a cycle where every output has taken (or is taking) the current one. With all outputs
// ready the block moves one beat per cycle; latency is one cycle (registered outputs). The skew
// between branches (e.g. a U-Net skip path) must be absorbed by FIFOs after this block.
//
// Outputs are packed buses: output i uses m_axis_tdata[i*DATA_WIDTH +: DATA_WIDTH],
// m_axis_tvalid[i] and m_axis_tready[i]. Clock ap_clk, active-low synchronous reset ap_rst_n.
`timescale 1ns / 1ps
`default_nettype none

module duplicate_streams #(
    // Width of one beat in bits (SIMD * element bits; any positive width).
    parameter integer DATA_WIDTH = 8,
    // Number of output streams, >= 2.
    parameter integer NUM_OUTPUTS = 2
) (
    input  wire                              ap_clk,
    input  wire                              ap_rst_n,

    input  wire [DATA_WIDTH-1:0]             s_axis_tdata,
    input  wire                              s_axis_tvalid,
    output wire                              s_axis_tready,

    output wire [NUM_OUTPUTS*DATA_WIDTH-1:0] m_axis_tdata,
    output wire [NUM_OUTPUTS-1:0]            m_axis_tvalid,
    input  wire [NUM_OUTPUTS-1:0]            m_axis_tready
);

    // Elaboration-time parameter checks.
    generate
        if (DATA_WIDTH < 1) begin : g_bad_width
            $fatal(1, "duplicate_streams: DATA_WIDTH must be >= 1 (got %0d)", DATA_WIDTH);
        end
        if (NUM_OUTPUTS < 2) begin : g_bad_outputs
            $fatal(1, "duplicate_streams: NUM_OUTPUTS must be >= 2 (got %0d)", NUM_OUTPUTS);
        end
    endgenerate

    reg [DATA_WIDTH-1:0]  data;      // the beat all outputs show (one register serves all)
    reg [NUM_OUTPUTS-1:0] pending;   // output i has not yet taken `data`

    // Accept when every output is either done with the current beat or taking it now.
    assign s_axis_tready = &(~pending | m_axis_tready);
    wire in_fire = s_axis_tvalid && s_axis_tready;

    assign m_axis_tdata  = {NUM_OUTPUTS{data}};
    assign m_axis_tvalid = pending;

    always @(posedge ap_clk) begin
        if (in_fire) data <= s_axis_tdata;
    end

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            pending <= {NUM_OUTPUTS{1'b0}};
        end else if (in_fire) begin
            pending <= {NUM_OUTPUTS{1'b1}};
        end else begin
            pending <= pending & ~m_axis_tready;
        end
    end

endmodule

`default_nettype wire
