// AXI-Stream register slice (full-throughput skid buffer).
//
// Breaks the combinational path of tvalid/tdata forward and tready backward between two streaming
// layers while still moving one beat per cycle. Used as the smallest RTL block of the project and
// as the first check that the cocotb + Verilator flow works.
`timescale 1ns / 1ps
`default_nettype none

module axis_register #(
    // Width of tdata in bits (any positive width; FINN streams are padded to whole bytes).
    parameter integer DATA_WIDTH = 8,
    // 1: carry tlast (frame boundary) through the slice; 0: tie it off.
    parameter integer LAST_ENABLE = 1
) (
    input  wire                  ap_clk,
    input  wire                  ap_rst_n,

    input  wire [DATA_WIDTH-1:0] s_axis_tdata,
    input  wire                  s_axis_tvalid,
    output wire                  s_axis_tready,
    input  wire                  s_axis_tlast,

    output wire [DATA_WIDTH-1:0] m_axis_tdata,
    output wire                  m_axis_tvalid,
    input  wire                  m_axis_tready,
    output wire                  m_axis_tlast
);

    // Elaboration-time parameter checks.
    generate
        if (DATA_WIDTH < 1) begin : g_bad_width
            initial $fatal(1, "axis_register: DATA_WIDTH must be >= 1 (got %0d)", DATA_WIDTH);
        end
        if (LAST_ENABLE != 0 && LAST_ENABLE != 1) begin : g_bad_last
            initial $fatal(1, "axis_register: LAST_ENABLE must be 0 or 1 (got %0d)", LAST_ENABLE);
        end
    endgenerate

    // Main register (what the master port shows) and skid register (catches the beat accepted in
    // the cycle the downstream stalls).
    reg [DATA_WIDTH-1:0] main_data, skid_data;
    reg                  main_last, skid_last;
    reg                  main_valid, skid_valid;

    assign s_axis_tready = !skid_valid;
    assign m_axis_tdata  = main_data;
    assign m_axis_tvalid = main_valid;
    assign m_axis_tlast  = (LAST_ENABLE != 0) ? main_last : 1'b0;

    wire in_fire  = s_axis_tvalid && s_axis_tready;
    wire out_free = !main_valid || m_axis_tready;

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            main_valid <= 1'b0;
            skid_valid <= 1'b0;
        end else begin
            if (out_free) begin
                if (skid_valid) begin
                    main_data  <= skid_data;
                    main_last  <= skid_last;
                    main_valid <= 1'b1;
                    skid_valid <= 1'b0;
                end else begin
                    main_data  <= s_axis_tdata;
                    main_last  <= s_axis_tlast;
                    main_valid <= in_fire;
                end
            end else if (in_fire) begin
                skid_data  <= s_axis_tdata;
                skid_last  <= s_axis_tlast;
                skid_valid <= 1'b1;
            end
        end
    end

endmodule

`default_nettype wire
