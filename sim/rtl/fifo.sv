// fifo: a DEPTH-entry stream FIFO -- fpga_gan's simulation model of finn-rtllib's module.
//
// Why it exists: finn-rtllib's fifo derives its memory geometry from a constant function that
// returns a struct, which Verilator (5.049) cannot evaluate at elaboration, so the sized FIFOs of
// a compiled design cannot be simulated with it. This module has the same name, parameters and
// ports; it holds exactly DEPTH items (what FIFO sizing is about) with a registered, first-word-
// fall-through output. RAM_STYLE only matters for synthesis and is ignored here. Only the
// simulation file lists use it (fpga_gan.sim); synthesis uses FINN's own file.

module fifo #(
	int unsigned  DEPTH,                 // capacity in items, >= 2
	int unsigned  DATA_WIDTH,            // bits per item
	/* verilator lint_off UNUSEDPARAM */
	parameter  RAM_STYLE = "auto"        // synthesis hint of the original; unused in simulation
	/* verilator lint_on UNUSEDPARAM */
)(
	input	logic  clk,
	input	logic  rst,

	input	logic [DATA_WIDTH-1:0]  idat,
	input	logic  ivld,
	output	logic  irdy,

	output	logic [DATA_WIDTH-1:0]  odat,
	output	logic  ovld,
	input	logic  ordy,

	output	logic [$clog2(DEPTH+1):0]  count,     // items currently held
	output	logic [$clog2(DEPTH+1):0]  maxcount   // largest count since reset
);

	initial begin
		if(DEPTH < 2)  $fatal(1, "%m: DEPTH must be >= 2, got %0d", DEPTH);
		if(DATA_WIDTH < 1)  $fatal(1, "%m: DATA_WIDTH must be >= 1");
	end

	localparam int unsigned  AW = DEPTH > 1? $clog2(DEPTH) : 1;

	logic [DATA_WIDTH-1:0]  Mem[DEPTH];
	logic [AW-1:0]  WrPtr;
	logic [AW-1:0]  RdPtr;
	logic [$clog2(DEPTH+1):0]  Count;
	logic [$clog2(DEPTH+1):0]  MaxCount;

	uwire  push = ivld && irdy;
	uwire  pop  = ovld && ordy;

	assign	irdy = 32'(Count) < DEPTH;
	assign	ovld = Count != 0;
	assign	odat = Mem[RdPtr];
	assign	count = Count;
	assign	maxcount = MaxCount;

	always_ff @(posedge clk) begin
		if(rst) begin
			WrPtr <= 0;
			RdPtr <= 0;
			Count <= 0;
			MaxCount <= 0;
		end
		else begin
			if(push) begin
				Mem[WrPtr] <= idat;
				WrPtr <= WrPtr == AW'(DEPTH-1)? 0 : WrPtr + 1;
			end
			if(pop)  RdPtr <= RdPtr == AW'(DEPTH-1)? 0 : RdPtr + 1;
			Count <= Count + (push? 1 : 0) - (pop? 1 : 0);
			if(Count + (push? 1 : 0) - (pop? 1 : 0) > MaxCount)  MaxCount <= Count + (push? 1 : 0) - (pop? 1 : 0);
		end
	end

endmodule : fifo
