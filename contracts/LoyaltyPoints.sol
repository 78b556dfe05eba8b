// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IConsortium} from "./interfaces/IConsortium.sol";
import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {ILoyaltyPoints} from "./interfaces/ILoyaltyPoints.sol";
import {IErasureHook, IMemberRegistry} from "./interfaces/IMemberRegistry.sol";

/// @title LoyaltyPoints
/// @notice Coalition points per member id (random bytes32, never derived from personal data).
/// Points are earned at one partner and may be redeemed at any other; there is deliberately no
/// transfer between members. Each partner's issued and redeemed totals give its net settlement
/// position against the coalition.
///
/// Rules: earning needs the member's valid "loyalty" consent towards the earning partner and stays
/// under `MAX_EARN` per item, `MAX_ISSUE_PER_PERIOD` per partner and day (so no one partner can fill
/// the supply, nor flood it in a day) and `MAX_SUPPLY` in total. Redeeming a member with a key needs its EIP-712
/// signature (`redeemSigned`); a member without one is redeemed by its home partner only.
///
/// Settlement rule for erasure: an erased member's balance is forfeited. Forfeited points leave the
/// supply but stay issued: the partners that issued them still owe them, to the coalition's common
/// pool (`totalForfeited`) instead of to a redeeming partner. So at all times
/// sum over partners of positionOf = -(totalSupply + totalForfeited).
contract LoyaltyPoints is ILoyaltyPoints, IErasureHook {
    /// @notice The most points one earn (or one item of a batch) may carry.
    uint256 public constant MAX_EARN = 1_000_000_000;
    /// @notice The most points all members may hold together. With MAX_EARN it keeps every total far
    /// below 2**255, so positions never overflow int256.
    uint256 public constant MAX_SUPPLY = 1_000_000_000_000_000_000;
    /// @notice The period issuance is capped over, per partner: a day of block time.
    uint256 public constant ISSUE_PERIOD = 1 days;
    /// @notice The most points one partner may issue in one period: 10,000 of the largest earns a day,
    /// so that filling the supply alone would take it over 270 years.
    uint256 public constant MAX_ISSUE_PER_PERIOD = 10_000_000_000_000;

    bytes32 private constant _LOYALTY = keccak256("loyalty");
    bytes32 private constant _REDEEM_TYPEHASH =
        keccak256("Redeem(bytes32 member,address partner,uint256 amount,bytes32 ref,uint256 nonce,uint256 deadline)");

    IConsortium private immutable _consortium;
    IMemberRegistry private immutable _registry;
    IConsentRegistry private immutable _consent;
    mapping(bytes32 member => uint256) private _balances;
    mapping(address partner => uint256) private _issued;
    mapping(address partner => uint256) private _redeemed;
    uint256 private _totalSupply;
    uint256 private _totalForfeited;
    mapping(address partner => mapping(uint256 period => uint256)) private _issuedInPeriod;

    constructor(address consortium_, address registry_, address consent_) {
        _consortium = IConsortium(consortium_);
        _registry = IMemberRegistry(registry_);
        _consent = IConsentRegistry(consent_);
    }

    modifier onlyPartner() {
        if (!_consortium.isPartner(msg.sender)) revert LoyaltyNotPartner(msg.sender);
        _;
    }

    /// @notice Credit `amount` points to `member`, issued by the calling partner.
    /// Requirements:
    /// - the caller is a current partner; `member` is enrolled, not erased, and has valid "loyalty"
    ///   consent towards the caller;
    /// - `amount` is 1 to MAX_EARN; the caller's issuance this period stays at most MAX_ISSUE_PER_PERIOD
    ///   and the total supply at most MAX_SUPPLY.
    function earn(bytes32 member, uint256 amount, bytes32 ref) external onlyPartner {
        _earn(member, amount, ref, true);
        _issue(amount);
    }

    /// @notice `earn` for many members in one transaction (imports, nightly runs); all or nothing.
    /// Items of one member in a row are checked against the registry and the consent registry once:
    /// neither changes within this call, so the answer for the first holds for the rest (a caller that
    /// groups its items by member pays for those checks once per member).
    /// Requirements:
    /// - as `earn` for every item; the three arrays have the same, non-zero length.
    function earnBatch(
        bytes32[] calldata members,
        uint256[] calldata amounts,
        bytes32[] calldata refs
    ) external onlyPartner {
        _checkBatch(members.length, amounts.length, refs.length);
        uint256 total = 0;
        for (uint256 i = 0; i < members.length; ++i) {
            _earn(members[i], amounts[i], refs[i], i == 0 || members[i] != members[i - 1]);
            total += amounts[i]; // each at most MAX_EARN: no overflow in any calldata array
        }
        _issue(total); // the caller's totals written once per batch, not once per item
    }

    /// @notice Debit `amount` points from a member without a key, redeemed at its home partner.
    /// Requirements:
    /// - the caller is a current partner and the member's home partner; the member is active and has
    ///   no signer (one that has must sign: `redeemSigned`);
    /// - `amount` is not zero and at most the balance.
    function redeem(bytes32 member, uint256 amount, bytes32 ref) external onlyPartner {
        _redeemAsHome(member, amount, ref);
    }

    /// @notice `redeem` for many members in one transaction; all or nothing.
    /// Requirements:
    /// - as `redeem` for every item; the three arrays have the same, non-zero length.
    function redeemBatch(
        bytes32[] calldata members,
        uint256[] calldata amounts,
        bytes32[] calldata refs
    ) external onlyPartner {
        _checkBatch(members.length, amounts.length, refs.length);
        for (uint256 i = 0; i < members.length; ++i) {
            _redeemAsHome(members[i], amounts[i], refs[i]);
        }
    }

    /// @notice Debit `amount` points from `member` at the calling partner, as the member signed
    /// (EIP-712 `Redeem(member, partner, amount, ref, nonce, deadline)`, domain of the MemberRegistry).
    /// Requirements:
    /// - the caller is a current partner (the one named in the signature); the member is active;
    /// - the signature is the member's signer's, for its current nonce, before `deadline`;
    /// - `amount` is not zero and at most the balance.
    function redeemSigned(
        bytes32 member,
        uint256 amount,
        bytes32 ref,
        uint256 deadline,
        bytes calldata signature
    ) external onlyPartner {
        bytes32 structHash = keccak256(
            abi.encode(_REDEEM_TYPEHASH, member, msg.sender, amount, ref, _registry.nonceOf(member), deadline)
        );
        _registry.useAuthorization(member, structHash, deadline, signature);
        _redeem(member, amount, ref);
    }

    /// @notice Forfeit an erased member's balance (called by the MemberRegistry on erasure).
    /// Requirements:
    /// - the caller is the MemberRegistry.
    function eraseMember(bytes32 member) external {
        if (msg.sender != address(_registry)) revert LoyaltyNotRegistry(msg.sender);
        uint256 balance = _balances[member];
        // Cannot underflow: every balance is part of the total supply.
        unchecked {
            _balances[member] = 0;
            _totalSupply -= balance;
        }
        _totalForfeited += balance;
        emit PointsForfeited(member, balance);
    }

    function balanceOf(bytes32 member) external view returns (uint256) {
        return _balances[member];
    }

    function issuedBy(address partner) external view returns (uint256) {
        return _issued[partner];
    }

    function redeemedAt(address partner) external view returns (uint256) {
        return _redeemed[partner];
    }

    /// @notice Points redeemed at `partner` minus points issued by it: positive means the coalition
    /// owes the partner (it honoured others' points), negative means the partner owes the coalition.
    function positionOf(address partner) external view returns (int256) {
        return SafeCast.toInt256(_redeemed[partner]) - SafeCast.toInt256(_issued[partner]);
    }

    /// @notice Points `partner` issued in the current period (`ISSUE_PERIOD`), and when it ends.
    function issuedThisPeriod(address partner) external view returns (uint256 issued, uint256 periodEnds) {
        uint256 period = block.timestamp / ISSUE_PERIOD;
        return (_issuedInPeriod[partner][period], (period + 1) * ISSUE_PERIOD);
    }

    function totalSupply() external view returns (uint256) {
        return _totalSupply;
    }

    /// @notice Points forfeited by erased members: owed by their issuers to the coalition's pool.
    function totalForfeited() external view returns (uint256) {
        return _totalForfeited;
    }

    function consortium() external view returns (address) {
        return address(_consortium);
    }

    /// @dev With `checkMember` false the caller has just checked this member (the previous item).
    function _earn(bytes32 member, uint256 amount, bytes32 ref, bool checkMember) private {
        if (member == bytes32(0)) revert LoyaltyInvalidMember();
        if (amount == 0) revert LoyaltyZeroAmount();
        if (amount > MAX_EARN) revert LoyaltyAmountAboveCap(amount, MAX_EARN);
        uint256 supply = _totalSupply;
        if (supply + amount > MAX_SUPPLY) revert LoyaltySupplyCapExceeded(supply, amount, MAX_SUPPLY);
        if (checkMember) {
            _registry.requireActive(member);
            if (!_consent.isValid(member, msg.sender, _LOYALTY)) revert LoyaltyConsentRequired(member, msg.sender);
        }
        // Cannot overflow: a balance is part of the supply, which was just checked against MAX_SUPPLY.
        unchecked {
            _balances[member] += amount;
            _totalSupply = supply + amount;
        }
        emit PointsEarned(member, msg.sender, amount, ref);
    }

    /// @dev Count `amount` points just earned as issued by the caller, this period and for ever.
    function _issue(uint256 amount) private {
        uint256 period = block.timestamp / ISSUE_PERIOD;
        uint256 issued = _issuedInPeriod[msg.sender][period];
        if (issued + amount > MAX_ISSUE_PER_PERIOD) {
            revert LoyaltyPeriodCapExceeded(msg.sender, issued, amount, MAX_ISSUE_PER_PERIOD);
        }
        _issuedInPeriod[msg.sender][period] = issued + amount;
        _issued[msg.sender] += amount; // lifetime total, not bounded by the supply: checked
    }

    function _redeemAsHome(bytes32 member, uint256 amount, bytes32 ref) private {
        if (member == bytes32(0)) revert LoyaltyInvalidMember();
        (address home, address signer) = _registry.requireActive(member);
        if (signer != address(0)) revert LoyaltySignatureRequired(member);
        if (home != msg.sender) revert LoyaltyNotHomePartner(member, home, msg.sender);
        _redeem(member, amount, ref);
    }

    function _redeem(bytes32 member, uint256 amount, bytes32 ref) private {
        if (member == bytes32(0)) revert LoyaltyInvalidMember();
        if (amount == 0) revert LoyaltyZeroAmount();
        uint256 balance = _balances[member];
        if (balance < amount) revert LoyaltyInsufficientBalance(member, balance, amount);
        // Cannot underflow: checked against the balance just above, and every balance is part of
        // the total supply.
        unchecked {
            _balances[member] = balance - amount;
            _totalSupply -= amount;
        }
        _redeemed[msg.sender] += amount;
        emit PointsRedeemed(member, msg.sender, amount, ref);
    }

    function _checkBatch(uint256 members, uint256 amounts, uint256 refs) private pure {
        if (members == 0) revert LoyaltyEmptyBatch();
        if (members != amounts || members != refs) revert LoyaltyLengthMismatch();
    }
}
